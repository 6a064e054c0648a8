"""Today's model options and editing tools through the running app against the emulator: what
is stored (format, alpha, lineage), what is refused before anything is paid (masks, inputs,
retired models), and what the catalog says of itself (GET /models)."""

from __future__ import annotations

import io
import random
from typing import Any

import httpx
import pytest
from PIL import Image as PILImage
from sqlalchemy import select

from tests.support import upload, upload_mask, wait_for_task
from volcimage.tasks.models import UpstreamCall

pytestmark = pytest.mark.one_database  # the upstream and the checks are the point


async def generated(client: httpx.AsyncClient, **body: Any) -> dict[str, Any]:
    created = await client.post("/api/v1/generate", json={"prompt": "a lantern", **body})
    assert created.status_code == 201, created.text
    task = await wait_for_task(client, created.json()["task_id"])
    assert task["status"] == "completed", task["error"]
    return task


async def picture_of(client: httpx.AsyncClient, task: dict[str, Any]) -> PILImage.Image:
    original = await client.get(task["images"][0]["url"])
    return PILImage.open(io.BytesIO(original.content))


async def test_seedream_5_lite_stores_the_format_asked_for(app_client: httpx.AsyncClient) -> None:
    png = await generated(app_client, model="seedream-5.0-lite", output_format="png")
    assert png["images"][0]["mime_type"] == "image/png"
    assert (await picture_of(app_client, png)).format == "PNG"
    jpeg = await generated(app_client, model="seedream-5.0-lite", output_format="jpeg")
    assert jpeg["images"][0]["mime_type"] == "image/jpeg"


async def test_a_transparent_background_is_stored_with_its_alpha(
    app_client: httpx.AsyncClient,
) -> None:
    task = await generated(
        app_client, model="seedream-5.0-pro", output_format="png", background="transparent"
    )
    made = await picture_of(app_client, task)
    assert made.mode == "RGBA" and made.getchannel("A").getextrema() == (0, 255)
    thumb = await app_client.get(task["images"][0]["thumbnail_url"])
    assert thumb.status_code == 200


async def test_a_web_search_is_recorded_with_the_paid_call(make_studio: Any) -> None:
    async with make_studio() as studio:
        await generated(studio.client, model="seedream-5.0-lite", web_search=True)
        async with studio.state.sessionmaker() as session:
            call = await session.scalar(select(UpstreamCall))
        assert call is not None and call.response is not None
        assert call.response["usage"]["tool_usage"] == {"web_search": 1}


async def test_prompt_options_reach_the_upstream_and_are_kept_in_the_file(
    app_client: httpx.AsyncClient,
) -> None:
    task = await generated(app_client, model="seedream-4.0", optimize_prompt="fast")
    assert task["params"]["optimize_prompt"] == "fast"
    jimeng = await generated(app_client, model="jimeng-3.1", use_pre_llm=False)
    assert jimeng["params"]["use_pre_llm"] is False
    scale = await generated(app_client, model="jimeng-4.6", scale=80)
    assert scale["scale"] == 80


async def test_a_wide_jimeng_4_size_widens_the_ratio_bounds(app_client: httpx.AsyncClient) -> None:
    """Jimeng 4.x takes 1/16–16 when min_ratio/max_ratio are sent: the app sends them."""
    task = await generated(app_client, model="jimeng-4.0", width=7500, height=500)
    assert (task["images"][0]["width"], task["images"][0]["height"]) == (7500, 500)


async def test_a_long_prompt_passes_with_a_warning(app_client: httpx.AsyncClient) -> None:
    body = {"prompt": "灯" * 301, "model": "seedream-4.0"}
    created = await app_client.post("/api/v1/generate", json=body)
    assert created.status_code == 201
    assert "301 Chinese characters" in created.json()["warnings"][0]


async def refused(client: httpx.AsyncClient, body: dict[str, Any]) -> dict[str, Any]:
    response = await client.post("/api/v1/generate", json={"prompt": "x", **body})
    assert response.status_code == 400, response.text
    return dict(response.json())


async def test_a_tools_inputs_are_checked_before_anything_is_paid(
    make_studio: Any,
) -> None:
    async with make_studio() as studio:
        client = studio.client
        source = await upload(client, 400, 300)
        inpaint = {"model": "jimeng-inpaint", "source_image_id": source}
        small = await upload_mask(client, 200, 150)
        answer = await refused(client, inpaint | {"mask": small})
        assert answer["details"] == {"field": "mask", "width": 400, "height": 300}
        colour = await upload(client, 400, 300)  # RGB, no alpha: not a mask
        answer = await refused(client, inpaint | {"mask": colour})
        assert answer["details"]["field"] == "mask" and "single-channel" in answer["message"]
        missing = await refused(client, inpaint | {"mask": "no-such-upload"})
        assert missing["details"] == {"field": "mask", "id": "no-such-upload"}
        gone = await refused(client, {"model": "jimeng-upscale", "source_image_id": "nope"})
        assert gone["details"]["field"] in ("upscale", "source_image_id")
        too_long = await refused(client, inpaint | {"mask": small, "prompt": "画" * 121})
        assert too_long["details"] == {"field": "prompt", "max_length": 120}
        # noise does not compress: over the upscale's 4.7 MB
        noise = PILImage.frombytes("RGB", (1400, 1400), random.Random(2).randbytes(1400 * 1400 * 3))
        out = io.BytesIO()
        noise.save(out, "PNG")
        files = {"file": ("noise.png", out.getvalue(), "application/octet-stream")}
        big = (await client.post("/api/v1/uploads", files=files)).json()["upload_id"]
        answer = await refused(
            client, {"model": "jimeng-upscale", "source_image_id": big, "upscale": "4k"}
        )
        assert answer["details"] == {"field": "source_image_id", "id": big}
        assert "4.7 MB" in answer["message"]
        assert studio.emulator.generation_calls == 0
        assert studio.state.emulator.state.visual.submits == 0  # type: ignore[union-attr]


async def test_an_upload_can_be_the_source_and_its_id_is_the_lineage(
    app_client: httpx.AsyncClient,
) -> None:
    source = await upload(app_client, 600, 400)
    task = await generated(
        app_client, model="jimeng-outpaint", source_image_id=source, outpaint={"right": 0.5}
    )
    image = task["images"][0]
    assert (image["width"], image["height"]) == (900, 400)
    assert image["source_image_id"] == source
    listed = await app_client.get("/api/v1/history", params={"model": "jimeng-outpaint"})
    assert listed.json()["items"][0]["images"][0]["source_image_id"] == source


async def test_retired_models_and_price_overrides_come_from_settings(make_studio: Any) -> None:
    async with make_studio(RETIRED_MODELS="seededit-3.0", PRICE_OVERRIDES="jimeng-4.0=0.3") as s:
        answer = await refused(s.client, {"model": "seededit-3.0"})
        assert answer["error"] == "model_retired" and "seededit-3.0" in answer["message"]
        models = {m["id"]: m for m in (await s.client.get("/api/v1/models")).json()["models"]}
        assert models["seededit-3.0"]["retired"] is True
        assert models["jimeng-4.0"]["price_per_image"] == 0.3
        assert models["seedream-5.0-pro"]["confirmed"] is False
        assert models["jimeng-4.0"]["prices"][0]["since"]
        assert "upstream_id" not in models["jimeng-4.6"]


async def test_a_layer_decomposition_keeps_the_base_and_every_layer(
    app_client: httpx.AsyncClient,
) -> None:
    """One paid call, all its images stored; the task reserved 17 (the most a call makes) and
    completes with however many layers the model found."""
    task = await generated(app_client, model="seedream-5.0-pro", layer_decomposition=True)
    assert task["num_images"] == 17 and task["error"] is None
    assert 2 <= len(task["images"]) <= 17
    assert task["params"]["layer_decomposition"] is True
    layers = [await app_client.get(image["url"]) for image in task["images"][1:]]
    for layer in layers:
        assert PILImage.open(io.BytesIO(layer.content)).mode == "RGBA"
    refused_group = await app_client.post(
        "/api/v1/generate",
        json={
            "prompt": "x",
            "model": "seedream-5.0-pro",
            "layer_decomposition": True,
            "num_images": 2,
        },
    )
    assert refused_group.status_code == 400
