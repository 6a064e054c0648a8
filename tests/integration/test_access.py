"""Access control and hardening: API key (header, bearer, session cookie), rate limits,
security headers and CORS."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select

from volcimage.core.config import ConfigError, load_settings
from volcimage.core.db import utcnow
from volcimage.tasks.models import UpstreamCall

KEY = "team-key-4f9a1c"


@pytest.mark.one_database  # no query is involved
async def test_api_key_guards_the_api_but_not_the_page_or_health(make_studio: Any) -> None:
    async with make_studio(ENABLE_API_KEY_AUTH="true", API_KEY=KEY) as studio:
        client = studio.client
        refused = await client.get("/api/v1/tasks")
        assert refused.status_code == 401
        assert refused.json() == {"error": "unauthorized", "message": "An API key is required"}
        assert refused.headers["www-authenticate"] == "Bearer"
        assert (
            await client.get("/api/v1/tasks", headers={"X-API-Key": "wrong"})
        ).status_code == 401
        assert (await client.get("/api/v1/tasks", headers={"X-API-Key": KEY})).status_code == 200
        bearer = {"Authorization": f"Bearer {KEY}"}
        assert (await client.get("/api/v1/tasks", headers=bearer)).status_code == 200
        assert (await client.get("/metrics")).status_code == 401
        assert (await client.get("/emulator/_emulator/stats")).status_code == 401
        for open_path in ("/", "/api/v1/health", "/static/js/main.js"):
            assert (await client.get(open_path)).status_code == 200, open_path


@pytest.mark.one_database  # no query is involved
async def test_session_cookie_for_the_page_holds_no_key(make_studio: Any) -> None:
    async with make_studio(ENABLE_API_KEY_AUTH="true", API_KEY=KEY) as studio:
        client = studio.client
        wrong = await client.post("/api/v1/session", json={"api_key": "guess"})
        assert wrong.status_code == 401 and wrong.json()["error"] == "unauthorized"
        assert "set-cookie" not in wrong.headers
        login = await client.post("/api/v1/session", json={"api_key": KEY})
        assert login.status_code == 200
        assert login.json()["mode"] == "api_key" and login.json()["signed_in"]
        cookie = login.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=strict" in cookie and KEY not in cookie
        assert (await client.get("/api/v1/tasks")).status_code == 200  # the client keeps it
        forged = await client.post("/api/v1/generate", json={"prompt": "from another site"})
        assert forged.status_code == 403 and forged.json()["error"] == "csrf_failed"
        csrf = (await client.get("/api/v1/session")).json()["csrf_token"]
        assert csrf == login.json()["csrf_token"]
        created = await client.post(
            "/api/v1/generate", json={"prompt": "with a cookie"}, headers={"X-CSRF-Token": csrf}
        )
        assert created.status_code == 201
        await client.delete("/api/v1/session", headers={"X-CSRF-Token": csrf})
        assert (await client.get("/api/v1/tasks")).status_code == 401


def test_api_key_auth_without_a_key_stops_start_up() -> None:
    with pytest.raises(ConfigError, match="API_KEY must be set"):
        load_settings(_env_file=None, ENABLE_API_KEY_AUTH="true")


@pytest.mark.one_database  # no query is involved
async def test_rate_limit_answers_429_with_retry_after(make_studio: Any) -> None:
    async with make_studio(RATE_LIMIT_PER_MINUTE=3) as studio:
        client = studio.client
        for _ in range(3):
            assert (await client.get("/api/v1/tasks")).status_code == 200
        limited = await client.get("/api/v1/history")
        assert limited.status_code == 429
        body = limited.json()
        assert body["error"] == "rate_limit_exceeded" and body["message"]
        assert 1 <= body["retry_after"] <= 60
        assert limited.headers["retry-after"] == str(body["retry_after"])
        assert (await client.get("/api/v1/health")).status_code == 200, "health is never limited"
        thumbnail = await client.get("/api/v1/images/unknown/thumbnail")
        assert thumbnail.status_code == 404, "image files are not counted"


@pytest.mark.one_database  # no query is involved
async def test_security_headers_and_cors_from_allowed_origins(make_studio: Any) -> None:
    async with make_studio(ALLOWED_ORIGINS="https://studio.example") as studio:
        client = studio.client
        page = await client.get("/")
        csp = page.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "unsafe-inline" not in csp.split("style-src")[0]
        assert "unsafe-eval" not in csp and "frame-ancestors 'none'" in csp
        assert page.headers["x-content-type-options"] == "nosniff"
        assert page.headers["referrer-policy"] == "same-origin"
        preflight = {"Access-Control-Request-Method": "POST"}
        allowed = await client.options(
            "/api/v1/generate", headers={"Origin": "https://studio.example", **preflight}
        )
        assert allowed.headers["access-control-allow-origin"] == "https://studio.example"
        other = await client.options(
            "/api/v1/generate", headers={"Origin": "https://evil.example", **preflight}
        )
        assert "access-control-allow-origin" not in other.headers


async def test_daily_image_budget_refuses_new_tasks_with_429(make_studio: Any) -> None:
    async with make_studio(DAILY_IMAGE_QUOTA=3) as studio:
        await studio.run(num_images=2)
        refused = await studio.client.post(
            "/api/v1/generate", json={"prompt": "one more", "num_images": 2}
        )
        assert refused.status_code == 429
        body = refused.json()
        assert body["error"] == "quota_exceeded" and "2 of 3" in body["message"]
        assert 0 < body["retry_after"] <= 86400
        info = (await studio.client.get("/api/v1/system/info")).json()
        assert info["quota"] == {"used": 2, "limit": 3}
        assert (
            await studio.client.post("/api/v1/generate", json={"prompt": "fits"})
        ).status_code == 201


async def test_upstream_budget_is_shared_through_the_database(make_studio: Any) -> None:
    async with make_studio(UPSTREAM_IMAGES_PER_MINUTE=2) as studio:
        await studio.run(num_images=2)
        async with studio.state.sessionmaker() as session:
            calls = list((await session.scalars(select(UpstreamCall))).all())
            for call in calls:  # as if made 59.6 s ago, by any worker
                call.called_at = utcnow() - timedelta(seconds=59.6)
            await session.commit()
        task = await studio.run()
        assert task["status"] == "completed"
        async with studio.state.sessionmaker() as session:
            times = sorted(c for c in await session.scalars(select(UpstreamCall.called_at)) if c)
        assert (times[-1] - times[0]).total_seconds() >= 59.9, "the third call waited its turn"


async def test_audit_log_records_who_did_what_without_secrets(make_studio: Any) -> None:
    async with make_studio(ENABLE_API_KEY_AUTH="true", API_KEY=KEY) as studio:
        client = studio.client
        await client.post("/api/v1/session", json={"api_key": "wrong-guess"})
        await studio.sign_in(api_key=KEY)
        task = await studio.run(prompt="audited lighthouse")
        image_id = task["images"][0]["image_id"]
        await client.patch(f"/api/v1/images/{image_id}", json={"favorite": True})
        await client.delete(f"/api/v1/task/{task['task_id']}", headers={"X-API-Key": KEY})
        entries = (await client.get("/api/v1/audit")).json()
        actions = [e["action"] for e in reversed(entries)]
        assert actions == ["login.failed", "login", "task.create", "image.update", "task.delete"]
        create = next(e for e in entries if e["action"] == "task.create")
        assert create["detail"]["prompt"] == "audited lighthouse"
        assert create["actor"] == "session" and create["target"] == task["task_id"]
        assert entries[0]["actor"] == "api-key"
        text = json.dumps(entries)
        assert KEY not in text and "wrong-guess" not in text
        only = (await client.get("/api/v1/audit", params={"action": "login"})).json()
        assert [e["action"] for e in only] == ["login"]


@pytest.mark.one_database  # no query is involved
async def test_basic_auth_guards_the_whole_studio_but_not_the_probes(make_studio: Any) -> None:
    async with make_studio(BASIC_AUTH_USERNAME="studio", BASIC_AUTH_PASSWORD="p@ss:word") as studio:
        client = studio.client
        page = await client.get("/")
        assert page.status_code == 401
        assert page.headers["www-authenticate"].startswith('Basic realm="volcimage"')
        assert (await client.get("/api/v1/health")).status_code == 200
        assert (await client.get("/api/v1/ready")).status_code == 200
        wrong = await client.get("/", auth=("studio", "nope"))
        assert wrong.status_code == 401
        assert (await client.get("/", auth=("studio", "p@ss:word"))).status_code == 200
        assert (await client.get("/api/v1/tasks", auth=("studio", "p@ss:word"))).status_code == 200


def test_basic_auth_needs_both_halves() -> None:
    with pytest.raises(ConfigError, match="BASIC_AUTH_USERNAME and BASIC_AUTH_PASSWORD"):
        load_settings(_env_file=None, BASIC_AUTH_USERNAME="studio")
