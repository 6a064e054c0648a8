"""The HTTP API in process, on SQLite and PostgreSQL, against the built-in emulator (demo mode)."""

from __future__ import annotations

import io
from typing import Any

import httpx
import pytest
from PIL import Image as PILImage

from tests.support import generate, wait_for_task
from volcimage.core.config import Settings
from volcimage.images.processing import read_metadata

API = "/api/v1"


async def test_generate_four_images_stores_originals_thumbnails_and_history(
    app_client: httpx.AsyncClient, settings: Settings
) -> None:
    created = await generate(app_client, num_images=4, width=768, height=512, seed=7, scale=3)
    assert created["status"] == "pending"
    assert set(created) == {"task_id", "status", "created_at", "estimated_time", "warnings"}
    assert created["warnings"] == []

    task = await wait_for_task(app_client, created["task_id"])
    assert task["status"] == "completed", task
    assert task["progress"] == 100
    assert task["owner"] is None  # no accounts: nobody's in particular
    assert len(task["images"]) == 4
    seeds, pixels = [], set()
    for image in task["images"]:
        original = await app_client.get(image["url"])
        assert original.status_code == 200
        assert original.headers["content-type"] == "image/jpeg"
        with PILImage.open(io.BytesIO(original.content)) as picture:
            assert picture.size == (768, 512)
            pixels.add(picture.tobytes())
        metadata = read_metadata(original.content)
        assert metadata["prompt"] == "a red fox in snow"
        seeds.append(metadata["seed"])
        thumb = await app_client.get(image["thumbnail_url"])
        assert thumb.headers["content-type"] == "image/webp"
        with PILImage.open(io.BytesIO(thumb.content)) as picture:
            assert max(picture.size) == settings.THUMBNAIL_MAX_SIZE
    assert seeds == [7, 8, 9, 10], "a fixed seed gives each image its own, reproducible seed"
    assert len(pixels) == 4
    files = [p for p in settings.IMAGE_DIR.rglob("*.jpg")]
    thumbs = [p for p in settings.THUMBNAIL_DIR.rglob("*.webp")]
    assert len(files) == 4 and len(thumbs) == 4
    assert not list(settings.IMAGE_DIR.rglob(".tmp-*"))

    page = (await app_client.get(f"{API}/history", params={"page": 1, "limit": 20})).json()
    assert page["total"] == 1 and page["items"][0]["task_id"] == created["task_id"]


async def test_download_flag_makes_an_attachment(app_client: httpx.AsyncClient) -> None:
    task = await wait_for_task(app_client, (await generate(app_client))["task_id"])
    image = task["images"][0]
    inline = await app_client.get(image["url"])
    assert inline.headers["content-disposition"].startswith("inline")
    attachment = await app_client.get(image["url"], params={"download": 1})
    assert attachment.headers["content-disposition"].startswith("attachment")
    assert attachment.content == inline.content


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"prompt": ""}, "prompt"),
        ({"prompt": "   "}, "prompt"),
        ({"prompt": "x" * 1001}, "prompt"),
        ({"prompt": "cat", "model": "general_v9"}, "model"),
        ({"prompt": "cat", "model": "seedream-3.0", "width": 100, "height": 100}, "size"),
        ({"prompt": "cat", "model": "seedream-4.0", "width": 9000, "height": 9000}, "width"),
        ({"prompt": "cat", "width": 1024}, "height"),
        ({"prompt": "cat", "num_images": 0}, "num_images"),
        ({"prompt": "cat", "num_images": 5}, "num_images"),
        ({"prompt": "cat", "model": "seedream-4.0", "seed": 5}, "seed"),
        ({"prompt": "cat", "model": "seedream-3.0", "scale": 11}, "scale"),
        ({"prompt": "cat", "unknown_field": 1}, "unknown_field"),
        ({}, "prompt"),
    ],
)
async def test_bad_input_is_a_400_with_the_seed_shape_and_writes_nothing(
    app_client: httpx.AsyncClient, body: dict[str, Any], field: str
) -> None:
    response = await app_client.post(f"{API}/generate", json=body)
    assert response.status_code == 400, response.text
    error = response.json()
    assert error["error"] == "validation_error"
    assert error["message"]
    assert field in str(error["details"]) or field in error["message"]
    assert (await app_client.get(f"{API}/tasks")).json()["items"] == []


async def test_malformed_json_is_a_400(app_client: httpx.AsyncClient) -> None:
    response = await app_client.post(
        f"{API}/generate",
        content=b'{"prompt": "cat",',
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 400
    assert response.json()["error"] == "validation_error"
    assert "JSON" in response.json()["message"]


async def test_unknown_ids_are_404_with_the_seed_shape(app_client: httpx.AsyncClient) -> None:
    for method, path in [
        ("GET", f"{API}/task/nope"),
        ("DELETE", f"{API}/task/nope"),
        ("DELETE", f"{API}/history/nope"),
        ("GET", f"{API}/images/nope"),
        ("GET", f"{API}/images/nope/thumbnail"),
    ]:
        response = await app_client.request(method, path)
        assert response.status_code == 404, path
        assert response.json()["error"] == "not_found"
        assert response.json()["message"]


async def test_delete_removes_task_rows_and_files(
    app_client: httpx.AsyncClient, settings: Settings
) -> None:
    task = await wait_for_task(app_client, (await generate(app_client, num_images=2))["task_id"])
    assert len(list(settings.IMAGE_DIR.rglob("*.jpg"))) == 2
    response = await app_client.delete(f"{API}/task/{task['task_id']}")
    assert response.status_code == 204
    assert (await app_client.get(f"{API}/task/{task['task_id']}")).status_code == 404
    assert (await app_client.get(task["images"][0]["url"])).status_code == 404
    assert list(settings.IMAGE_DIR.rglob("*.jpg")) == []
    assert list(settings.THUMBNAIL_DIR.rglob("*.webp")) == []


async def test_history_search_filters_and_pages(app_client: httpx.AsyncClient) -> None:
    for prompt in ["blue whale", "red panda", "blue bird", "100% cotton_cloth"]:
        await wait_for_task(app_client, (await generate(app_client, prompt=prompt))["task_id"])
    blue = (await app_client.get(f"{API}/history", params={"q": "BLUE"})).json()
    assert blue["total"] == 2
    assert {i["prompt"] for i in blue["items"]} == {"blue whale", "blue bird"}
    literal = (await app_client.get(f"{API}/history", params={"q": "0% c"})).json()
    assert [i["prompt"] for i in literal["items"]] == ["100% cotton_cloth"]
    assert (await app_client.get(f"{API}/history", params={"q": "_"})).json()["total"] == 1
    page2 = (await app_client.get(f"{API}/history", params={"page": 2, "limit": 3})).json()
    assert page2["total"] == 4 and len(page2["items"]) == 1 and page2["page"] == 2
    assert page2["items"][0]["prompt"] == "blue whale"  # newest first
    by_status = await app_client.get(f"{API}/history", params={"status": "failed"})
    assert by_status.json()["total"] == 0
    by_model = await app_client.get(f"{API}/history", params={"model": "seedream-3.0"})
    assert by_model.json()["total"] == 4
    bad = await app_client.get(f"{API}/history", params={"limit": 0})
    assert bad.status_code == 400 and bad.json()["error"] == "validation_error"


async def test_models_info_and_health(app_client: httpx.AsyncClient) -> None:
    models = (await app_client.get(f"{API}/models")).json()
    ids = [m["id"] for m in models["models"]]
    assert models["default_model"] in ids and "seedream-3.0" in ids
    assert all("upstream_id" not in m for m in models["models"])
    fields = models["params"]["properties"]  # the request's JSON Schema, for the page's form
    assert fields["num_images"] == {
        "default": 1,
        "maximum": 15,
        "minimum": 1,
        "title": "Num Images",
        "type": "integer",
    }
    info = (await app_client.get(f"{API}/system/info")).json()
    assert info["api_connected"] is True and info["mode"] == "demo"
    assert set(info["quota"]) == {"used", "limit"}
    health = await app_client.get(f"{API}/health")
    assert health.status_code == 200 and health.json()["checks"]["database"] == "ok"


async def test_page_is_served(app_client: httpx.AsyncClient) -> None:
    page = await app_client.get("/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert (await app_client.get("/docs")).status_code == 200
    schema = (await app_client.get("/openapi.json")).json()
    assert "/api/v1/generate" in schema["paths"]


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # no database involved
async def test_app_name_is_the_page_title_and_brand_escaped(make_studio: Any) -> None:
    async with make_studio(APP_NAME="Ateliér <b>&</b>") as studio:
        page = (await studio.client.get("/")).text
    assert "<title>Ateliér &lt;b&gt;&amp;&lt;/b&gt;</title>" in page
    assert ">Ateliér &lt;b&gt;&amp;&lt;/b&gt;</h1>" in page
    assert "{{" not in page and "volcimage</h1>" not in page


async def test_metrics_count_requests_tasks_upstream_calls_and_storage(
    app_client: httpx.AsyncClient,
) -> None:
    await wait_for_task(app_client, (await generate(app_client, num_images=2))["task_id"])
    await app_client.get(f"{API}/task/unknown-id")
    response = await app_client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    assert 'volcimage_tasks{status="completed"} 1.0' in text
    assert "volcimage_queue_depth 0.0" in text
    assert "volcimage_images 2.0" in text
    assert 'route="/api/v1/task/{task_id}",status="404"' in text
    assert (
        'volcimage_upstream_calls_total{model="seedream-3.0",outcome="ok",provider="ark"}' in text
    )
    storage = next(line for line in text.splitlines() if line.startswith("volcimage_storage_bytes"))
    assert float(storage.split()[1]) > 0


async def test_ready_when_the_schema_is_at_head(app_client: httpx.AsyncClient) -> None:
    response = await app_client.get(f"{API}/ready")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "checks": {"schema": "ok"}}
