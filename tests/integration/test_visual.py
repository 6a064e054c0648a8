"""The Visual API path: every catalog model through the app, signature V4 as the emulator checks
it, each fault's outcome, and a worker killed while its job waits in the upstream queue."""

from __future__ import annotations

import asyncio
import io
import signal
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image as PILImage
from volcengine.auth.SignerV4 import SignerV4

from tests.support import (
    Stack,
    Studio,
    local,
    signed_request,
    upload,
    upload_mask,
    upstream_calls,
    wait_for_task,
    wait_task,
)
from volcimage.catalog.models import load_catalog
from volcimage.emulator.app import create_emulator_app
from volcimage.images.processing import read_metadata

pytestmark = (
    pytest.mark.one_database
)  # the upstream is the point; the queries are those every task makes

CATALOG = load_catalog()


# What each editing tool is given beside its source (a stored 1200×800 image), and the size of
# what it makes from it.
TOOLS: dict[str, tuple[dict[str, Any], tuple[int, int]]] = {
    "inpaint": ({"prompt": "删除"}, (1200, 800)),  # the docs: 删除 erases the masked part
    "outpaint": ({"outpaint": {"left": 0.25, "right": 0.25, "top": 0.5}}, (1800, 1200)),
    "upscale": ({"prompt": "", "upscale": "4k"}, (4096, 2731)),
    "i2i": ({}, (1024, 1024)),
}


async def stored_image(client: httpx.AsyncClient, width: int, height: int) -> str:
    """The id of an image the studio made (a tool's source; its results name it)."""
    body = {"prompt": "a source", "model": "general-3.0", "width": width, "height": height}
    created = await client.post("/api/v1/generate", json=body)
    assert created.status_code == 201, created.text
    task = await wait_for_task(client, created.json()["task_id"])
    return str(task["images"][0]["image_id"])


@pytest.mark.parametrize("model_id", [m.id for m in CATALOG.models])
async def test_every_catalog_model_generates_through_the_app(
    app_client: httpx.AsyncClient, model_id: str
) -> None:
    """Each model and editing tool: the images stored, their size, the parameters in each file,
    and for a tool the source each image records (lineage)."""
    model = CATALOG.get(model_id)
    body: dict[str, Any] = {"prompt": f"a paper boat, {model_id}", "model": model_id}
    body["num_images"] = model.max_images if model.takes_source else 2
    expected_size = model.default_dimensions
    source = None
    if model.min_reference_images:
        body["reference_images"] = [await upload(app_client, 1200, 800)]
        expected_size = (1248, 832)  # SeedEdit's adaptive size nearest the reference's 3:2
    if model.takes_source:
        source = await stored_image(app_client, 1200, 800)
        extra, expected_size = TOOLS[model.kind]
        body |= {"source_image_id": source, **extra}
        if model.kind == "inpaint":
            body["mask"] = await upload_mask(app_client, 1200, 800)
    created = await app_client.post("/api/v1/generate", json=body)
    assert created.status_code == 201, created.text
    task = await wait_for_task(app_client, created.json()["task_id"])
    assert task["status"] == "completed", task
    assert len(task["images"]) == body["num_images"]
    for image in task["images"]:
        assert image["source_image_id"] == source
        original = await app_client.get(image["url"])
        with PILImage.open(io.BytesIO(original.content)) as picture:
            assert picture.size == expected_size
        assert (image["width"], image["height"]) == expected_size
        metadata = read_metadata(original.content)
        assert metadata["model"] == model_id and metadata["prompt"] == body["prompt"].strip()
        assert metadata.get("source_image_id") == source
        thumb = await app_client.get(image["thumbnail_url"])
        assert thumb.status_code == 200 and thumb.headers["content-type"] == "image/webp"


async def test_a_parameter_the_model_does_not_take_is_a_400(
    app_client: httpx.AsyncClient,
) -> None:
    response = await app_client.post(
        "/api/v1/generate", json={"prompt": "a cat", "model": "jimeng-3.1", "scale": 2}
    )
    assert response.status_code == 400
    assert response.json()["details"]["field"] == "scale"
    steps = await app_client.post(
        "/api/v1/generate",
        json={"prompt": "a cat", "model": "general-2.0-pro", "steps": 60},
    )
    assert steps.status_code == 400 and "between 1 and 50" in steps.json()["message"]


# ---- signature V4 (volcengine-api.md §2 "Signature V4") ---------------------------------------


SUBMIT = {"req_key": "jimeng_t2i_v31", "prompt": "a kite", "width": 1328, "height": 1328}


@pytest.fixture
async def emulator_client() -> Any:
    app = create_emulator_app()
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://emulator") as client:
        yield client


async def test_signature_from_the_official_signer_verifies(emulator_client: Any) -> None:
    """Fact: requests signed by SignerV4 with the right key pair are accepted."""
    url, headers, body = signed_request(SUBMIT)
    response = await emulator_client.post(url, headers=headers, content=body)
    assert response.status_code == 200
    assert response.json()["code"] == 10000 and response.json()["data"]["task_id"]


@pytest.mark.parametrize(
    ("fact", "change", "status", "code"),
    [
        ("a body whose hash differs is rejected", "body", 403, "SignatureDoesNotMatch"),
        ("a wrong secret key is rejected", "secret", 403, "SignatureDoesNotMatch"),
        ("an unknown access key is rejected", "access_key", 401, "InvalidAccessKey"),
        ("a scope with another region is rejected", "region", 403, "SignatureDoesNotMatch"),
        ("a scope with another service is rejected", "service", 403, "SignatureDoesNotMatch"),
        ("a changed query (action) is rejected", "query", 403, "SignatureDoesNotMatch"),
        ("a changed signed header is rejected", "header", 403, "SignatureDoesNotMatch"),
        (
            "a request without Authorization is rejected",
            "no_auth",
            401,
            "MissingAuthenticationToken",
        ),
        ("an X-Date more than 15 minutes off is rejected", "stale", 401, "InvalidTimestamp"),
    ],
)
async def test_tampered_requests_are_rejected(
    emulator_client: Any,
    monkeypatch: pytest.MonkeyPatch,
    fact: str,
    change: str,
    status: int,
    code: str,
) -> None:
    options: dict[str, str] = {
        "secret": {"sk": "not-the-secret"},
        "access_key": {"ak": "AKLTnobody"},
        "region": {"region": "cn-beijing"},
        "service": {"service": "ark"},
    }.get(change, {})
    if change == "stale":
        monkeypatch.setattr(SignerV4, "get_current_format_date", lambda: "20200101T000000Z")
    url, headers, body = signed_request(SUBMIT, **options)
    if change == "body":
        body = body.replace(b"a kite", b"a bomb")
    elif change == "query":
        url = url.replace("CVSync2AsyncSubmitTask", "CVProcess")
    elif change == "header":
        headers["Content-Type"] = "text/plain"
    elif change == "no_auth":
        del headers["Authorization"]
    response = await emulator_client.post(url, headers=headers, content=body)
    assert response.status_code == status, fact
    assert response.json()["ResponseMetadata"]["Error"]["Code"] == code, fact


async def test_unknown_job_is_not_found_and_params_are_checked(emulator_client: Any) -> None:
    """Facts: GetResult of an unknown task is status not_found; bad params get code 50400."""
    url, headers, body = signed_request(
        {"req_key": "jimeng_t2i_v31", "task_id": "nope"}, action="CVSync2AsyncGetResult"
    )
    response = await emulator_client.post(url, headers=headers, content=body)
    assert response.json()["data"]["status"] == "not_found"
    url, headers, body = signed_request({**SUBMIT, "width": 9000})
    refused = await emulator_client.post(url, headers=headers, content=body)
    assert refused.status_code == 400 and refused.json()["code"] == 50400


# ---- faults through the app ------------------------------------------------------------------


def visual_stats(studio: Studio) -> Any:
    return studio.state.emulator.state.visual


@pytest.mark.parametrize(
    ("fault", "status", "code", "retries", "submits"),
    [
        ("rate_limit", "completed", None, 1, 1),
        ("concurrency", "completed", None, 1, 1),
        ("server_error", "failed", "50500", 0, 0),  # the docs: no retry needed
        ("output_sensitive", "completed", None, 1, 2),  # a new sample may pass: new job
        ("sensitive", "failed", "50412", 0, 0),  # the prompt itself: final
        ("expired", "failed", "JobExpired", 0, 1),  # paid, then lost: never paid again
        ("malformed", "failed", "MalformedResponse", 0, 1),
    ],
)
async def test_each_visual_fault_ends_retried_or_failed_with_its_code(
    make_studio: Any, fault: str, status: str, code: str | None, retries: int, submits: int
) -> None:
    async with make_studio() as studio:
        studio.emulator.faults.append(fault)
        task = await studio.run(model="jimeng-3.1", prompt=f"fault {fault}")
        assert task["status"] == status, task
        assert task["retry_count"] == retries
        if code:
            assert task["error"]["code"] == code and task["error"]["message"]
        assert visual_stats(studio).submits == submits
        assert studio.emulator.faults == []


async def test_a_second_output_refusal_in_a_row_is_final(make_studio: Any) -> None:
    async with make_studio() as studio:
        studio.emulator.faults.extend(["output_sensitive", "output_sensitive"])
        task = await studio.run(model="jimeng-3.1", prompt="refused twice")
        assert task["status"] == "failed" and task["retry_count"] == 1, task
        assert task["error"]["code"] == "50511"
        assert visual_stats(studio).submits == 2 and studio.emulator.faults == []


async def test_cvprocess_output_refusal_is_retried_as_a_new_call(make_studio: Any) -> None:
    async with make_studio() as studio:
        studio.emulator.faults.append("output_sensitive")
        task = await studio.run(model="general-2.0-pro", steps=20, scale=4)
        assert task["status"] == "completed" and task["retry_count"] == 1
        assert visual_stats(studio).processes == 2


# ---- crash while the job waits upstream -------------------------------------------------------


def test_worker_killed_while_the_job_is_queued_upstream_polls_it_after_restart(
    tmp_path: Path, database_url: str
) -> None:
    keys = {"VOLC_ACCESS_KEY": "AKLTcrashtest", "VOLC_SECRET_KEY": "crash-secret"}
    with Stack(tmp_path, database_url, apis=1, EMULATOR_LATENCY_MS=5000, **keys) as stack:
        created = local.post(
            f"{stack.api.url}/api/v1/generate", json={"prompt": "queued", "model": "jimeng-4.0"}
        ).json()
        first = stack.start_worker()
        deadline = time.monotonic() + 120  # a safety net for a busy machine
        while not any(c.upstream_task_id for c in asyncio.run(upstream_calls(database_url))):
            assert time.monotonic() < deadline, "the worker never submitted the job"
            time.sleep(0.05)
        first.send_signal(signal.SIGKILL)
        first.wait()

        stack.start_worker()
        task = wait_task(stack.api.url, created["task_id"])
        assert task["status"] == "completed", task
        assert len(task["images"]) == 1
        stats = stack.emulator_stats("/_emulator/visual/stats")
        assert stats["submits"] == 1, "the job was polled again, never submitted twice"
        assert stats["polls"] >= 2
