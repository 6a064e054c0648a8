"""Favourites, tags, history filters on them, and ZIP archives of originals."""

from __future__ import annotations

import io
import zipfile
from typing import Any

import httpx
import pytest

from tests.support import generate, wait_for_task

API = "/api/v1"


async def finished(client: httpx.AsyncClient, **body: Any) -> dict[str, Any]:
    return await wait_for_task(client, (await generate(client, **body))["task_id"])


async def test_favourite_and_tags_show_on_the_image_and_filter_history(
    app_client: httpx.AsyncClient,
) -> None:
    cats = await finished(app_client, prompt="a cat on a roof", num_images=2)
    dogs = await finished(app_client, prompt="a dog in a park")
    image_id = cats["images"][1]["image_id"]

    response = await app_client.patch(
        f"{API}/images/{image_id}", json={"favorite": True, "tags": ["roof", " pets ", "pets"]}
    )
    assert response.status_code == 200, response.text
    assert response.json()["favorite"] is True
    assert response.json()["tags"] == ["pets", "roof"]

    await app_client.patch(f"{API}/images/{dogs['images'][0]['image_id']}", json={"tags": ["pets"]})
    task = (await app_client.get(f"{API}/task/{cats['task_id']}")).json()
    assert task["images"][1]["tags"] == ["pets", "roof"] and task["images"][0]["tags"] == []

    def ids(page: httpx.Response) -> list[str]:
        return [t["task_id"] for t in page.json()["items"]]

    assert ids(await app_client.get(f"{API}/history", params={"favorite": "true"})) == [
        cats["task_id"]
    ]
    assert ids(await app_client.get(f"{API}/history", params={"favorite": "false"})) == [
        dogs["task_id"]
    ]
    assert ids(await app_client.get(f"{API}/history", params={"tag": "roof"})) == [cats["task_id"]]
    assert len(ids(await app_client.get(f"{API}/history", params={"tag": "pets"}))) == 2
    assert (await app_client.get(f"{API}/tags")).json() == [
        {"name": "pets", "count": 2},
        {"name": "roof", "count": 1},
    ]

    cleared = await app_client.patch(f"{API}/images/{image_id}", json={"tags": []})
    assert cleared.json()["tags"] == [] and cleared.json()["favorite"] is True
    assert (await app_client.get(f"{API}/tags")).json() == [{"name": "pets", "count": 1}]


async def test_image_update_rejects_bad_input(app_client: httpx.AsyncClient) -> None:
    task = await finished(app_client)
    url = f"{API}/images/{task['images'][0]['image_id']}"
    for body in (
        {"tags": ["x" * 51]},
        {"tags": [""]},
        {"tags": ["two\x1fwords"]},  # control characters: not shown, and they split tags
        {"rating": 5},
        {"tags": ["t"] * 21},
    ):
        response = await app_client.patch(url, json=body)
        assert response.status_code == 400, body
        assert response.json()["error"] == "validation_error"
    missing = await app_client.patch(f"{API}/images/nope", json={"favorite": True})
    assert missing.status_code == 404


@pytest.mark.parametrize("how", ["GET /archive", "POST /images/zip"])
async def test_archive_streams_the_originals_as_a_zip(
    app_client: httpx.AsyncClient, how: str
) -> None:
    task = await finished(app_client, num_images=3)
    wanted = [i["image_id"] for i in task["images"]]
    if how == "GET /archive":
        response = await app_client.get(f"{API}/archive", params={"ids": ",".join(wanted)})
    else:
        response = await app_client.post(f"{API}/images/zip", json={"image_ids": wanted})
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/zip"
    assert response.headers["content-disposition"].startswith("attachment; filename=")
    assert int(response.headers["content-length"]) == len(response.content)
    with zipfile.ZipFile(io.BytesIO(response.content)) as archive:
        assert archive.testzip() is None
        names = archive.namelist()
        assert names == [f"volcimage-{i}.jpg" for i in wanted]
        first = await app_client.get(task["images"][0]["url"])
        assert archive.read(names[0]) == first.content


async def test_archive_rejects_unknown_and_missing_ids(app_client: httpx.AsyncClient) -> None:
    empty = await app_client.get(f"{API}/archive", params={"ids": ","})
    assert empty.status_code == 400 and empty.json()["details"]["field"] == "ids"
    unknown = await app_client.get(f"{API}/archive", params={"ids": "no-such-image"})
    assert unknown.status_code == 404 and "no-such-image" in unknown.json()["message"]
    none = await app_client.post(f"{API}/images/zip", json={"image_ids": []})
    assert none.status_code == 400 and none.json()["details"]["field"] == "image_ids"
    too_many = await app_client.post(f"{API}/images/zip", json={"image_ids": ["x"] * 501})
    assert too_many.status_code == 400
