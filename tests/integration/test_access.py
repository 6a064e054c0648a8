"""Access control and hardening: API key (header, bearer, session cookie), rate limits,
security headers and CORS."""

from __future__ import annotations

from typing import Any

import pytest

from volcimage.config import ConfigError, load_settings

KEY = "team-key-4f9a1c"


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
        for open_path in ("/", "/api/v1/health", "/static/js/app.js"):
            assert (await client.get(open_path)).status_code == 200, open_path


async def test_session_cookie_for_the_page_holds_no_key(make_studio: Any) -> None:
    async with make_studio(ENABLE_API_KEY_AUTH="true", API_KEY=KEY) as studio:
        client = studio.client
        wrong = await client.post("/api/v1/session", json={"api_key": "guess"})
        assert wrong.status_code == 401 and wrong.json()["error"] == "unauthorized"
        assert "set-cookie" not in wrong.headers
        login = await client.post("/api/v1/session", json={"api_key": KEY})
        assert login.status_code == 204
        cookie = login.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=strict" in cookie and KEY not in cookie
        assert (await client.get("/api/v1/tasks")).status_code == 200  # the client keeps it
        created = await client.post("/api/v1/generate", json={"prompt": "with a cookie"})
        assert created.status_code == 201
        await client.delete("/api/v1/session")
        assert (await client.get("/api/v1/tasks")).status_code == 401


def test_api_key_auth_without_a_key_stops_start_up() -> None:
    with pytest.raises(ConfigError, match="API_KEY must be set"):
        load_settings(_env_file=None, ENABLE_API_KEY_AUTH="true")


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
