"""A hostile upstream: answers the APIs never give (no images, malformed, a day's Retry-After,
the request's credentials echoed back) and result URLs that drip or never end. A real `serve`
in real mode calls a Starlette app in this process; every task must end with a clear error
that names what was wrong, and no key may show in any answer or log. Groups the upstream ends
short or cuts off say how many images they have."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from tests.support import Server, free_port, process_env, serve_app, wait_task
from volcimage.emulator.render import render_image
from volcimage.providers.base import RETRY_AFTER_CAP
from volcimage.providers.download import MAX_RESULT_BYTES

pytestmark = pytest.mark.one_database  # the upstream is the point

KEYS = {
    "ARK_API_KEY": "ark-HOSTILE-4f1c9e2a7b",
    "VOLC_ACCESS_KEY": "AKLT-HOSTILE-93be01",
    "VOLC_SECRET_KEY": "sk-HOSTILE-5a7d33c0e1",
}
UNCONFIGURED_TOKEN = "other-token-8d2f"  # a bearer token no setting names: caught by its shape
PICTURE = render_image("a hostile picture", 1, 64, 64)
HUGE = 200 * 2**20


def ark_error(status: int, code: str, message: str, **headers: str) -> Response:
    body = {"error": {"code": code, "message": message, "type": "BadRequest"}}
    return JSONResponse(body, status_code=status, headers=headers)


def image_at(path: str) -> Callable[[Request, str], Response]:
    return lambda request, _auth: JSONResponse(
        {"data": [{"url": f"{request.base_url}files/{path}", "size": "64x64"}]}
    )


# What Ark answers each prompt with (given the request and its Authorization header).
ARK_ANSWERS: dict[str, Callable[[Request, str], Response]] = {
    "no data": lambda _r, _a: JSONResponse({"model": "m", "created": 1}),
    "null data": lambda _r, _a: JSONResponse({"data": None, "created": 1}),
    "empty data": lambda _r, _a: JSONResponse({"data": [], "created": 1}),
    "data not a list": lambda _r, _a: JSONResponse({"data": "picture.jpg"}),
    "image without url": lambda _r, _a: JSONResponse({"data": [{"size": "64x64"}]}),
    "not json": lambda _r, _a: Response('{"data": [', media_type="application/json"),
    "html": lambda _r, _a: Response("<html>a gateway page</html>", media_type="text/html"),
    "echo": lambda _r, auth: ark_error(
        400,
        "InvalidParameter",
        f"You sent Authorization: {auth}, and before that Bearer {UNCONFIGURED_TOKEN}",
    ),
    "retry in a day": lambda _r, _a: ark_error(
        429, "ModelAccountIpmRateLimitExceeded", "slow down", **{"Retry-After": "86400"}
    ),
    "retry never": lambda _r, _a: ark_error(
        429, "ModelAccountIpmRateLimitExceeded", "slow down", **{"Retry-After": "1e12"}
    ),
    "drip": image_at("drip"),
    "huge": image_at("huge"),
    "huge declared": image_at("huge-declared"),
}


class Hostile:
    """The fake upstream, and what was asked of it."""

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()
        self.downloads: Counter[str] = Counter()

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/api/v3/images/generations", self.ark, methods=["POST"]),
                Route("/visual", self.visual, methods=["POST"]),
                Route("/files/{name}", self.files),
            ]
        )

    async def ark(self, request: Request) -> Response:
        prompt = (await request.json())["prompt"]
        self.calls[prompt] += 1
        return ARK_ANSWERS[prompt](request, request.headers["authorization"])

    async def visual(self, request: Request) -> Response:
        """Refuses the job, quoting the signed Authorization header's value (the access key and
        signature in it)."""
        self.calls["visual"] += 1
        auth = request.headers["authorization"]
        return JSONResponse(
            {"code": 50412, "message": f"text refused; you sent {auth}", "data": None}
        )

    async def files(self, request: Request) -> Response:
        name = request.path_params["name"]
        self.downloads[name] += 1
        if name == "drip":  # a byte at a time: no single read ever waits long
            return StreamingResponse(drip(), media_type="image/jpeg")
        headers = {"content-length": str(len(PICTURE) + HUGE)} if name == "huge-declared" else {}
        return StreamingResponse(padded(), media_type="image/jpeg", headers=headers)


async def drip() -> AsyncIterator[bytes]:
    for byte in PICTURE:
        yield bytes([byte])
        await asyncio.sleep(0.2)


async def padded() -> AsyncIterator[bytes]:
    """A whole picture, then 200 MB after its end (a decoder reads the picture and stops)."""
    yield PICTURE
    chunk = bytes(4 * 2**20)
    for _ in range(HUGE // len(chunk)):
        yield chunk


@pytest.fixture
def hostile() -> Iterator[tuple[Hostile, str]]:
    upstream = Hostile()
    with serve_app(upstream.app()) as url:
        yield upstream, url


def test_hostile_answers_fail_clearly_and_never_show_a_key(
    tmp_path: Path, database_url: str, hostile: tuple[Hostile, str]
) -> None:
    upstream, url = hostile
    port = free_port()
    env = process_env(
        tmp_path,
        database_url,
        VOLC_PROVIDER_MODE="real",
        ARK_BASE_URL=f"{url}/api/v3",
        VOLC_BASE_URL=f"{url}/visual",
        REQUEST_TIMEOUT=3,  # time to read 80 MiB from this process on a busy machine
        MAX_RETRY_COUNT=1,
        MAX_CONCURRENT_TASKS=16,
        APP_LOG_LEVEL="DEBUG",
        **KEYS,
    )
    server = Server(["serve", "--port", str(port)], env, tmp_path, port)
    seen: list[str] = []

    def api(method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        response = httpx.request(method, server.url + path, timeout=30, **kwargs)
        seen.append(str(response.headers) + response.text)
        return dict(response.json())

    def retrying(task_id: str) -> dict[str, Any]:
        deadline = time.monotonic() + 120  # a safety net for a busy machine
        while (task := api("GET", f"/api/v1/task/{task_id}"))["status"] != "retrying":
            assert time.monotonic() < deadline, task
            time.sleep(0.05)
        return task

    # each 429 pauses its model (here for 600 s): the two are of models of their own
    waiting = {"retry in a day": "seedream-3.0", "retry never": "seedream-4.5"}
    try:
        server.wait_ready()
        created = {
            prompt: api(
                "POST",
                "/api/v1/generate",
                json={"prompt": prompt, "model": waiting.get(prompt, "seedream-4.0")},
            )["task_id"]
            for prompt in ARK_ANSWERS
        }
        visual = api("POST", "/api/v1/generate", json={"prompt": "x", "model": "jimeng-3.1"})
        final = {p: wait_task(server.url, t) for p, t in created.items() if p not in waiting}
        final["visual"] = wait_task(server.url, visual["task_id"])
        held = {prompt: retrying(created[prompt]) for prompt in waiting}
        for prompt in waiting:
            api("POST", f"/api/v1/task/{created[prompt]}/cancel")
        seen.append(str(api("GET", "/api/v1/tasks?limit=50")))
    finally:
        server.stop()
    seen.extend(str(task) for task in final.values())

    # a day's Retry-After, or 1e12 s, is capped; the error says what the upstream asked
    for prompt, asked in zip(waiting, ("86400", "1e+12"), strict=True):
        error = held[prompt]["error"]
        assert error["code"] == "ModelAccountIpmRateLimitExceeded", error
        assert f"Retry-After asked for {asked} s" in error["message"], error
        assert f"retrying in {RETRY_AFTER_CAP:.0f} s" in error["message"], error

    def failed(prompt: str, code: str, *words: str) -> dict[str, Any]:
        task = final[prompt]
        assert task["status"] == "failed", (prompt, task)
        assert task["error"]["code"] == code, (prompt, task["error"])
        for word in words:
            assert word in task["error"]["message"], (prompt, task["error"])
        assert task["images"] == []
        return task

    for prompt, shown in (
        ("no data", "missing or null"),
        ("null data", "missing or null"),
        ("empty data", "empty"),
    ):
        failed(prompt, "NoImage", f"`data` is {shown}")
    failed("data not a list", "MalformedResponse", "`data` is not a list")
    failed("image without url", "MalformedResponse", "`data[0]` has neither")
    failed("not json", "MalformedResponse", "not JSON")
    failed("html", "MalformedResponse", "not a JSON object")
    echoed = failed("echo", "InvalidParameter", "Authorization: ***", "Bearer ***")
    assert UNCONFIGURED_TOKEN not in str(echoed)
    for prompt in ("huge", "huge declared"):
        failed(prompt, "ResultTooLarge", f"{MAX_RESULT_BYTES // 2**20} MiB")
    # final answers are not asked again: asking again would pay again
    finals = set(ARK_ANSWERS) - {*waiting, "drip"}
    assert {p: upstream.calls[p] for p in finals} == dict.fromkeys(finals, 1)
    assert {p: final[p]["retry_count"] for p in finals} == dict.fromkeys(finals, 0)
    assert upstream.downloads["huge-declared"] == 1 and upstream.downloads["huge"] == 1

    # a download that drips is cut at REQUEST_TIMEOUT, tried again, never paid again
    dripped = failed("drip", "DownloadTimeout", "REQUEST_TIMEOUT (3 s)", "gave up after 1")
    assert dripped["retry_count"] == 1 and upstream.calls["drip"] == 1
    assert upstream.downloads["drip"] == 2

    failed("visual", "50412", "Credential=***", "Signature=***")
    assert upstream.calls["visual"] == 1

    logs = [p.read_text(errors="replace") for p in tmp_path.rglob("*.log")]
    assert any("upstream call failed" in text for text in logs)
    everything = "\n".join(seen + logs)
    for name, value in KEYS.items():
        assert value not in everything, f"{name} leaked"
    assert UNCONFIGURED_TOKEN not in everything


async def test_a_group_the_upstream_ends_short_is_partial(make_studio: Any) -> None:
    async with make_studio() as studio:
        studio.emulator.faults.append("group_short")
        task = await studio.run(model="seedream-4.0", prompt="a series", num_images=3, group=True)
        assert task["status"] == "completed" and len(task["images"]) == 2, task
        assert task["error"] == {
            "code": "partial",
            "message": "2 of 3 images made: "
            "the upstream ended the group with fewer images than asked for",
        }


async def test_a_group_stream_cut_off_keeps_its_images_and_is_partial(make_studio: Any) -> None:
    """The stream stops after its first image: that image is kept and the group not bought
    again (a retry would pay for all three)."""
    async with make_studio() as studio:
        studio.emulator.faults.append("stream_cut")
        task = await studio.run(model="seedream-4.0", prompt="a series", num_images=3, group=True)
        assert task["status"] == "completed" and len(task["images"]) == 1, task
        assert task["error"]["code"] == "partial"
        assert task["error"]["message"].startswith("1 of 3 images made: the stream was cut off")
        assert "`completed` event" in task["error"]["message"]
        assert studio.emulator.generation_calls == 1 and task["retry_count"] == 0
