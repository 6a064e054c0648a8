"""The nginx template of docker-compose, rendered as the nginx image renders it, checked by the
real binary and exercised in front of a real server."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.sync.client import connect

from tests.support import Nginx, Server, behind_nginx, free_port, local, self_signed


def test_rendered_template_passes_nginx_t(tmp_path: Path) -> None:
    result = Nginx(tmp_path, free_port(), tmp_path / "data").test_config()
    assert result.returncode == 0, result.stderr
    assert "syntax is ok" in result.stderr and "test is successful" in result.stderr


def test_page_and_api_through_nginx_keep_the_apps_security_headers(
    proxied: tuple[Server, Nginx],
) -> None:
    _, nginx = proxied
    page = local.get(nginx.url + "/")
    assert page.status_code == 200 and "volcimage" in page.text
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert page.headers.get_list("x-content-type-options") == ["nosniff"]
    health = local.get(nginx.url + "/api/v1/health").json()
    assert health["status"] == "ok"


def test_static_files_come_from_nginx_compressed(proxied: tuple[Server, Nginx]) -> None:
    server, nginx = proxied
    css = local.get(nginx.url + "/static/css/app.css", headers={"Accept-Encoding": "gzip"})
    assert css.status_code == 200
    assert css.headers["content-encoding"] == "gzip"
    assert css.headers["cache-control"].startswith("max-age=3600")
    assert "/static/css/app.css" not in server.log_path.read_text(), "served by the app"


def test_images_are_sent_by_nginx_after_the_apps_check(proxied: tuple[Server, Nginx]) -> None:
    server, nginx = proxied
    created = local.post(
        nginx.url + "/api/v1/generate",
        json={"prompt": "through nginx", "model": "seedream-3.0", "num_images": 1},
    ).json()
    deadline = time.monotonic() + 120  # a safety net for a busy machine
    while (task := local.get(f"{nginx.url}/api/v1/task/{created['task_id']}").json())[
        "status"
    ] != "completed":
        assert time.monotonic() < deadline, task
        time.sleep(0.1)
    image = task["images"][0]
    direct = local.get(server.url + image["url"])
    assert direct.headers["x-accel-redirect"].startswith("/_protected/images/")
    assert direct.content == b"", "the app sends no bytes itself"

    original = local.get(nginx.url + image["url"] + "?download=1")
    assert original.status_code == 200 and original.content[:2] == b"\xff\xd8"
    assert original.headers["content-disposition"].startswith("attachment;")
    assert "x-accel-redirect" not in original.headers
    thumb = local.get(nginx.url + image["thumbnail_url"])
    assert thumb.status_code == 200 and thumb.content[8:12] == b"WEBP"
    hidden = local.get(nginx.url + "/_protected/images/" + direct.headers["x-accel-redirect"][19:])
    assert hidden.status_code == 404, "protected files are not reachable directly"
    missing = local.get(nginx.url + "/api/v1/images/not-an-id")
    assert missing.status_code == 404 and missing.json()["error"] == "not_found"


def test_events_stream_through_nginx_unbuffered(proxied: tuple[Server, Nginx]) -> None:
    _, nginx = proxied
    with local.stream("GET", nginx.url + "/api/v1/events", timeout=10) as stream:
        assert stream.headers["content-type"].startswith("text/event-stream")
        assert "content-encoding" not in stream.headers
        lines = stream.iter_lines()
        assert next(lines) == "event: ready"
        local.post(
            nginx.url + "/api/v1/generate",
            json={"prompt": "live through nginx", "model": "seedream-3.0"},
        )
        for line in lines:
            if line.startswith("data: ") and "task.created" in line:
                assert json.loads(line[6:])["task"]["prompt"] == "live through nginx"
                break


def test_websocket_through_nginx_queues_a_task_and_follows_it(
    proxied: tuple[Server, Nginx],
) -> None:
    _, nginx = proxied
    url = nginx.url.replace("http://", "ws://") + "/api/v1/generate/stream"
    with connect(url, open_timeout=10) as socket:
        assert json.loads(socket.recv(timeout=10)) == {"type": "ready"}
        socket.send(json.dumps({"type": "generate", "prompt": "over a socket", "num_images": 2}))
        seen: list[dict[str, Any]] = []
        while not any(m.get("task", {}).get("status") == "completed" for m in seen):
            seen.append(json.loads(socket.recv(timeout=30)))
        queued = next(m for m in seen if m["type"] == "task.queued")
        assert queued["status"] == "pending" and queued["estimated_time"] > 0
        done = seen[-1]["task"]
        assert done["task_id"] == queued["task_id"] and len(done["images"]) == 2
        assert [m["type"] for m in seen].count("image.stored") == 2
        socket.send("{not json")
        assert json.loads(socket.recv(timeout=10))["message"] == "The message is not valid JSON"
        socket.send(json.dumps({"type": "generate", "prompt": "x", "num_images": 0}))
        refused = json.loads(socket.recv(timeout=10))
        assert refused["type"] == "error" and refused["error"] == "validation_error"
        assert refused["details"]["errors"][0]["field"] == "num_images"
        socket.send(json.dumps({"type": "dance"}))
        assert json.loads(socket.recv(timeout=10))["error"] == "validation_error"


def test_bodies_over_their_routes_limit_are_413_in_the_apps_shape(
    proxied: tuple[Server, Nginx],
) -> None:
    """Uploads may carry MAX_UPLOAD_SIZE (32m here), every other body 1m: nginx refuses the
    rest before the app sees a byte, chunked bodies as they pass the limit."""
    server, nginx = proxied
    two_mb = b"x" * (2 * 1024 * 1024)
    declared = local.post(f"{nginx.url}/api/v1/session", content=two_mb)
    chunked = local.post(f"{nginx.url}/api/v1/generate", content=iter([two_mb[:1024], two_mb]))
    for refused in (declared, chunked):
        assert refused.status_code == 413, refused.text
        assert refused.headers["content-type"] == "application/json"
        answer = refused.json()
        assert answer["error"] == "payload_too_large" and answer["message"] and "details" in answer
    log = server.log_path.read_text()
    assert "/api/v1/session" not in log and "/api/v1/generate" not in log, "refused by nginx"

    within = local.post(f"{nginx.url}/api/v1/uploads", files={"file": ("x.png", two_mb)})
    assert within.status_code == 400 and within.json()["details"]["field"] == "file"
    over_app = b"\0" * (11 * 1024 * 1024)  # within nginx's 32m, over the app's 10 MB
    refused = local.post(f"{nginx.url}/api/v1/uploads", files={"file": ("x.png", over_app)})
    assert refused.status_code == 413 and refused.json()["details"]["limit"] > 10 * 1024 * 1024
    over_nginx = b"\0" * (33 * 1024 * 1024)
    refused = local.post(f"{nginx.url}/api/v1/uploads", files={"file": ("x.png", over_nginx)})
    assert refused.status_code == 413 and refused.json()["error"] == "payload_too_large"


def test_the_app_sees_the_clients_address_through_nginx_whatever_it_claims(
    proxied: tuple[Server, Nginx],
) -> None:
    """nginx is a trusted proxy (TRUSTED_PROXIES, as in docker-compose); what the client wrote
    in forwarding headers is not believed."""
    _, nginx = proxied
    claims = {"X-Forwarded-For": "203.0.113.9", "X-Real-IP": "203.0.113.9"}
    created = local.post(nginx.url + "/api/v1/generate", json={"prompt": "x"}, headers=claims)
    assert created.status_code == 201, created.text
    entries = local.get(nginx.url + "/api/v1/audit").json()
    assert [e["client"] for e in entries] == ["127.0.0.1"]


def test_without_a_certificate_nginx_serves_plain_http_only(proxied: tuple[Server, Nginx]) -> None:
    _, nginx = proxied
    assert "plain HTTP only" in nginx.switch_tls()
    assert local.get(nginx.url + "/").status_code == 200
    with pytest.raises(httpx.ConnectError):
        httpx.get(nginx.tls_url + "/api/v1/health", verify=False)


def test_with_a_certificate_nginx_serves_https_and_plain_http_redirects(tmp_path: Path) -> None:
    trust = self_signed(tmp_path / "nginx" / "certs")
    with behind_nginx(tmp_path) as (_, nginx):
        with httpx.Client(base_url=nginx.tls_url, verify=trust) as https:
            page = https.get("/")
            assert page.status_code == 200 and "volcimage" in page.text
            assert page.headers["strict-transport-security"] == "max-age=31536000"
            created = https.post("/api/v1/generate", json={"prompt": "over TLS"}).json()
            deadline = time.monotonic() + 120  # a safety net for a busy machine
            while (task := https.get(f"/api/v1/task/{created['task_id']}").json())[
                "status"
            ] != "completed":
                assert time.monotonic() < deadline, task
                time.sleep(0.1)
            image = https.get(task["images"][0]["url"])
            assert image.status_code == 200 and image.content[:2] == b"\xff\xd8"
            with https.stream("GET", "/api/v1/events", timeout=10) as stream:
                assert next(stream.iter_lines()) == "event: ready"

        plain = local.get(nginx.url + "/api/v1/tasks?limit=1")
        assert plain.status_code == 308
        assert plain.headers["location"] == f"{nginx.tls_url}/api/v1/tasks?limit=1"
        # the container's own health check stays on plain HTTP
        assert local.get(nginx.url + "/api/v1/health").json()["status"] == "ok"
