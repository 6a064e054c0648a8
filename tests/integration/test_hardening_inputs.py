"""Hostile input (issue 14): characters no database stores, dates past the calendar, JSON
nested to the recursion limit, bodies of hundreds of MB and uploads that decode to 36 M
pixels each. Each is refused as bad input, or waits its turn, without a 500 and without
stalling the rest of the service."""

from __future__ import annotations

import asyncio
import io
import json
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image as PILImage
from websockets.sync.client import connect

from tests.support import serving
from volcimage.images import decoding, uploads
from volcimage.images import processing as images

API = "/api/v1"
NUL, SURROGATE = "a\x00b", "a\ud800b"
BAD = "a%00b"  # NUL, as it arrives in a path or query

# (method, path, JSON body or None, the field named in the 400)
NUL_IN_PARAMETERS = [
    ("GET", f"/task/{BAD}", None, "path.task_id"),
    ("POST", f"/task/{BAD}/cancel", None, "path.task_id"),
    ("POST", f"/task/{BAD}/retry", None, "path.task_id"),
    ("DELETE", f"/task/{BAD}", None, "path.task_id"),
    ("DELETE", f"/history/{BAD}", None, "path.task_id"),
    ("GET", f"/images/{BAD}", None, "path.image_id"),
    ("GET", f"/images/{BAD}/thumbnail", None, "path.image_id"),
    ("PATCH", f"/images/{BAD}", {"favorite": True}, "path.image_id"),
    ("GET", f"/uploads/{BAD}", None, "path.upload_id"),
    ("GET", f"/uploads/{BAD}/thumbnail", None, "path.upload_id"),
    ("GET", f"/history?q={BAD}", None, "query.q"),
    ("GET", f"/history?model={BAD}", None, "query.model"),
    ("GET", f"/history?tag={BAD}", None, "query.tag"),
    ("GET", f"/archive?ids={BAD}", None, "query.ids"),
    ("GET", f"/audit?action={BAD}", None, "query.action"),
    ("PATCH", f"/templates/{BAD}", {"name": "n"}, "path.template_id"),
    ("DELETE", f"/templates/{BAD}", None, "path.template_id"),
    ("PATCH", f"/users/{BAD}", {"disabled": True}, "path.username"),
]
# (method, path, a body whose `{}` field is bad: the field named in the 400)
BAD_BODIES = [
    ("POST", "/generate", {"prompt": "{}"}),
    ("POST", "/generate", {"prompt": "p", "negative_prompt": "{}"}),
    ("POST", "/generate", {"prompt": "p", "model": "{}"}),
    ("POST", "/generate", {"prompt": "p", "reference_images": ["{}"]}),
    ("POST", "/images/zip", {"image_ids": ["{}"]}),
    ("PATCH", "/images/x", {"tags": ["{}"]}),
    ("POST", "/templates", {"name": "{}", "prompt": "p"}),
    ("POST", "/templates", {"name": "n", "prompt": "{}"}),
    ("POST", "/templates", {"name": "n", "prompt": "p", "negative_prompt": "{}"}),
    ("POST", "/templates", {"name": "n", "prompt": "p", "model": "{}"}),
    ("PATCH", "/templates/x", {"prompt": "{}"}),
    ("POST", "/users", {"username": "{}", "password": "p"}),
    ("PATCH", "/users/x", {"password": "{}"}),
    ("POST", "/users", {"username": "u", "password": "{}"}),
    ("PUT", "/session/password", {"current_password": "{}", "new_password": "p"}),
    ("PUT", "/session/password", {"current_password": "p", "new_password": "{}"}),
    ("POST", "/session", {"username": "{}", "password": "p"}),
    ("POST", "/session", {"username": "u", "password": "{}"}),
    ("POST", "/session", {"api_key": "{}"}),
]


def _bad_field(body: dict[str, Any]) -> str:
    name, value = next(
        (k, v) for k, v in body.items() if "{}" in (v if isinstance(v, list) else [v])
    )
    return f"{name}.0" if isinstance(value, list) else name


def _fill(value: Any, bad: str) -> Any:
    if isinstance(value, dict):
        return {k: _fill(v, bad) for k, v in value.items()}
    if isinstance(value, list):
        return [_fill(v, bad) for v in value]
    return bad if value == "{}" else value


async def test_nul_and_lone_surrogates_are_400_on_every_route(
    app_client: httpx.AsyncClient,
) -> None:
    """PostgreSQL answered a NUL with a 500 on every route; both databases a lone surrogate."""
    sent: list[tuple[str, str, bytes | None, str]] = [
        (m, p, json.dumps(b).encode() if b else None, f) for m, p, b, f in NUL_IN_PARAMETERS
    ]
    for bad in (NUL, SURROGATE):
        for method, path, body in BAD_BODIES:
            # json.dumps escapes both as \u0000 and \ud800, as a hostile client would send them
            sent.append((method, path, json.dumps(_fill(body, bad)).encode(), _bad_field(body)))
    for method, path, content, field in sent:
        response = await app_client.request(
            method, API + path, content=content, headers={"Content-Type": "application/json"}
        )
        assert response.status_code == 400, (method, path, field, response.text)
        answer = response.json()
        assert answer["error"] == "validation_error", answer
        assert answer["details"]["errors"][0]["field"] == field, (path, answer)


@pytest.mark.parametrize(
    ("name", "value"),
    [("date_from", "0001-01-01T00:00:00+14:00"), ("date_to", "9999-12-31T23:59:59-14:00")],
)
async def test_dates_past_the_calendar_in_utc_are_400(
    app_client: httpx.AsyncClient, name: str, value: str
) -> None:
    response = await app_client.get(f"{API}/history", params={name: value})
    assert response.status_code == 400, response.text
    assert response.json()["details"]["errors"][0]["field"] == f"query.{name}"
    # the calendar's own ends still work
    edge = "0001-01-01T00:00:00Z" if name == "date_from" else "9999-12-31T23:59:59Z"
    assert (await app_client.get(f"{API}/history", params={name: edge})).status_code == 200


def test_hostile_websocket_messages_get_errors_and_the_socket_stays_open(
    tmp_path: Path, database_url: str
) -> None:
    with serving(tmp_path, database_url) as server:
        url = server.url.replace("http://", "ws://") + f"{API}/generate/stream"
        with connect(url, open_timeout=10, max_size=None) as socket:
            assert json.loads(socket.recv(timeout=10)) == {"type": "ready"}
            socket.send("[" * 100_000 + "]" * 100_000)
            deep = json.loads(socket.recv(timeout=10))
            assert deep["type"] == "error" and deep["error"] == "validation_error", deep
            assert deep["message"] == "The message is nested too deeply"
            socket.send('{"type": "generate", "prompt": "a\\ud800b"}')
            odd = json.loads(socket.recv(timeout=10))
            assert odd["type"] == "error" and odd["details"]["errors"][0]["field"] == "prompt"
            socket.send(json.dumps({"type": "generate", "prompt": "still here"}))
            while (message := json.loads(socket.recv(timeout=10)))["type"] != "task.queued":
                assert message["type"] != "error", message


async def test_cancel_and_retry_document_their_409(app_client: httpx.AsyncClient) -> None:
    paths = (await app_client.get("/openapi.json")).json()["paths"]
    for action in ("cancel", "retry"):
        conflict = paths[f"/api/v1/task/{{task_id}}/{action}"]["post"]["responses"]["409"]
        assert conflict["content"]["application/json"]["schema"]["$ref"].endswith("/Error")
    assert "413" in paths["/api/v1/generate"]["post"]["responses"]
    assert "413" in paths["/api/v1/uploads"]["post"]["responses"]
    assert "413" not in paths["/api/v1/history"]["get"]["responses"]


class Body:
    """A request body of `chunks` MiB, sent as it is pulled; counts what the app pulled."""

    def __init__(self, chunks: int, prefix: bytes = b"") -> None:
        self.chunks = chunks
        self.prefix = prefix
        self.pulled = 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        yield self.prefix
        for _ in range(self.chunks):
            self.pulled += 1
            yield b"x" * (1024 * 1024)


async def test_oversized_bodies_are_413_before_they_are_read(
    app_client: httpx.AsyncClient,
) -> None:
    """A 300 MB body to the unauthenticated sign-in was read whole before its 400."""
    json_type = {"Content-Type": "application/json"}
    declared = Body(300)
    length = {"Content-Length": str(300 * 1024 * 1024), **json_type}
    response = await app_client.post(f"{API}/session", content=declared, headers=length)
    assert response.status_code == 413, response.text
    answer = response.json()
    assert answer["error"] == "payload_too_large" and answer["details"]["limit"] == 1024 * 1024
    assert answer["message"] and declared.pulled == 0, "refused on its Content-Length"

    chunked = Body(300, b'{"prompt": "')  # no Content-Length: counted as it streams
    response = await app_client.post(f"{API}/generate", content=chunked, headers=json_type)
    assert response.status_code == 413 and response.json()["error"] == "payload_too_large"
    assert chunked.pulled <= 2, "stopped once past the limit"
    assert (await app_client.get(f"{API}/health")).status_code == 200


async def test_uploads_have_their_own_body_limit(make_studio: Any) -> None:
    async with make_studio(MAX_UPLOAD_MB=1) as studio:
        client = studio.client
        over_json = b"\0" * (1024 * 1024 + 100)  # over the JSON routes' limit, not an upload's
        files = {"file": ("x.png", over_json, "image/png")}
        within = await client.post(f"{API}/uploads", files=files)
        assert within.status_code == 400 and "at most" in within.json()["message"], "the route said"
        files = {"file": ("x.png", b"\0" * (2 * 1024 * 1024), "image/png")}
        over = await client.post(f"{API}/uploads", files=files)
        assert over.status_code == 413 and over.json()["error"] == "payload_too_large"
        prompt = await client.post(f"{API}/generate", json={"prompt": "p" * len(over_json)})
        assert prompt.status_code == 413


@pytest.fixture(scope="module")
def huge_png() -> bytes:
    """154 KB that decode to 5999×5999 RGBA (144 MB)."""
    out = io.BytesIO()
    PILImage.new("RGBA", (5999, 5999), (200, 30, 30, 255)).save(out, "PNG")
    return out.getvalue()


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # no query is involved
async def test_big_decodes_wait_on_their_own_threads_within_a_pixel_budget(
    make_studio: Any, monkeypatch: pytest.MonkeyPatch, huge_png: bytes
) -> None:
    """Eight such uploads on the default thread pool stalled /health and file reads for 30 s."""
    entered, release = threading.Event(), threading.Event()
    lock = threading.Lock()
    seen: list[tuple[str, int]] = []  # (thread, pixels in flight) of each decode
    running = most = 0

    def held_decode(raw: bytes) -> tuple[PILImage.Image, str]:
        nonlocal running, most
        name = threading.current_thread().name
        with lock:
            running += 1
            most = max(most, running)
            seen.append((name, decoding.BUDGET.in_flight))
        try:
            entered.set()
            if name.startswith(decoding.THREAD_PREFIX):  # never hold the default pool's threads
                release.wait()
            return PILImage.new("RGBA", (64, 64)), "PNG"  # its pixels are not the point here
        finally:
            with lock:
                running -= 1

    storing: list[str] = []
    real_thumbnail = images.make_thumbnail

    def thumbnail_of_stored(image: PILImage.Image, size: int, quality: int) -> bytes:
        storing.append(threading.current_thread().name)
        return real_thumbnail(image, size, quality)

    monkeypatch.setattr(images, "make_thumbnail", thumbnail_of_stored)
    monkeypatch.setattr(uploads, "_decode", held_decode)
    async with make_studio() as studio:
        task = await studio.run()
        assert storing and all(n.startswith(decoding.THREAD_PREFIX) for n in storing), storing
        files = {"file": ("big.png", huge_png, "image/png")}
        sent = [
            asyncio.create_task(studio.client.post(f"{API}/uploads", files=files)) for _ in range(8)
        ]
        try:
            await asyncio.to_thread(entered.wait)
            health = await studio.client.get(f"{API}/health")
            thumbnail = await studio.client.get(task["images"][0]["thumbnail_url"])
            assert health.status_code == 200 and thumbnail.status_code == 200
        finally:
            release.set()
        answers = await asyncio.gather(*sent)
    assert [a.status_code for a in answers] == [201] * 8, answers[0].text
    assert all(name.startswith(decoding.THREAD_PREFIX) for name, _ in seen), seen
    assert most == 1, "36 M pixels fill the budget: one decode at a time"
    assert all(0 < pixels <= decoding.BUDGET.limit for _, pixels in seen), seen
