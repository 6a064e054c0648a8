"""Who may call the API, and how often.

With ENABLE_API_KEY_AUTH, every request but the page's own files, the health check and the
login needs the API key: as `X-API-Key`, as `Authorization: Bearer`, or as the session cookie
that POST /api/v1/session sets for the page (images and the event stream cannot carry
headers). The cookie holds an HMAC of the key, never the key, and is HttpOnly and
SameSite=Strict, so other sites cannot ride on it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import math
import time
from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse
from limits import RateLimitItemPerMinute
from limits.aio.storage import MemoryStorage
from limits.aio.strategies import MovingWindowRateLimiter
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from volcimage import audit
from volcimage.config import Settings
from volcimage.errors import Unauthorized
from volcimage.tasks.deps import State, get_session, get_state

COOKIE = "volcimage_session"
OPEN_PATHS = (
    "/",
    "/favicon.ico",
    "/api/v1/health",
    "/api/v1/ready",
    "/api/v1/session",
    "/docs",
    "/openapi.json",
)
OPEN_PREFIXES = ("/static/",)
PROBES = ("/api/v1/health", "/api/v1/ready")  # for load balancers and health checks
UNLIMITED_PATHS = ("/api/v1/health", "/api/v1/ready", "/api/v1/events", "/metrics")

router = APIRouter(prefix="/api/v1", tags=["access"])
StateDep = Annotated[State, Depends(get_state)]
SessionDep = Annotated[AsyncSession, Depends(get_session)]


def session_token(settings: Settings) -> str:
    key = settings.API_KEY.get_secret_value() if settings.API_KEY else ""
    secret = settings.SECRET_KEY.get_secret_value().encode()
    return hmac.new(secret, b"session:" + key.encode(), hashlib.sha256).hexdigest()


def key_matches(settings: Settings, given: str) -> bool:
    expected = settings.API_KEY.get_secret_value() if settings.API_KEY else ""
    return bool(expected) and hmac.compare_digest(given.encode(), expected.encode())


def basic_authorized(settings: Settings, headers: Headers) -> bool:
    header = headers.get("authorization", "")
    if not header.lower().startswith("basic "):
        return False
    try:
        user, _, password = base64.b64decode(header[6:]).decode().partition(":")
    except ValueError:
        return False
    expected = (
        settings.BASIC_AUTH_PASSWORD.get_secret_value() if settings.BASIC_AUTH_PASSWORD else ""
    )
    same_user = hmac.compare_digest(user.encode(), (settings.BASIC_AUTH_USERNAME or "").encode())
    same_password = hmac.compare_digest(password.encode(), expected.encode())
    return same_user and same_password


def authorized(settings: Settings, headers: Headers, cookies: dict[str, str]) -> bool:
    bearer = headers.get("authorization", "")
    given = headers.get("x-api-key") or (bearer[7:] if bearer.lower().startswith("bearer ") else "")
    if given:
        return key_matches(settings, given)
    cookie = cookies.get(COOKIE, "")
    return bool(cookie) and hmac.compare_digest(cookie, session_token(settings))


class Login(BaseModel):
    model_config = ConfigDict(extra="forbid")
    api_key: str = Field(..., min_length=1, max_length=500)


@router.post("/session", status_code=204)
async def login(body: Login, request: Request, session: SessionDep, state: StateDep) -> Response:
    """Exchanges the API key for a session cookie (for the page)."""
    settings = state.settings
    if not settings.ENABLE_API_KEY_AUTH or not key_matches(settings, body.api_key):
        audit.record(session, request, "login.failed")
        await session.commit()
        raise Unauthorized("The API key is not valid")
    audit.record(session, request, "login")
    await session.commit()
    response = Response(status_code=204)
    secure = request.headers.get("x-forwarded-proto", request.url.scheme) == "https"
    response.set_cookie(
        COOKIE,
        session_token(settings),
        max_age=30 * 24 * 3600,
        httponly=True,
        samesite="strict",
        secure=secure,
        path="/",
    )
    return response


@router.delete("/session", status_code=204)
async def logout() -> Response:
    response = Response(status_code=204)
    response.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict")
    return response


class AccessControl:
    """API key check, then a per-client request budget (429 with Retry-After)."""

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.settings = settings
        self.limiter = MovingWindowRateLimiter(MemoryStorage())
        per_minute = settings.RATE_LIMIT_PER_MINUTE
        self.limit = RateLimitItemPerMinute(per_minute) if per_minute else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        headers = Headers(scope=scope)
        refusal = self._refusal(path, headers)
        if refusal is not None:
            await refusal(scope, receive, send)
            return
        if self.limit is not None and _limited(scope["method"], path):
            client = self._client(scope, headers)
            if not await self.limiter.hit(self.limit, client):
                stats = await self.limiter.get_window_stats(self.limit, client)
                retry_after = max(1, math.ceil(stats.reset_time - time.time()))
                body: dict[str, object] = {
                    "error": "rate_limit_exceeded",
                    "message": f"More than {self.settings.RATE_LIMIT_PER_MINUTE} requests a "
                    "minute; slow down",
                    "retry_after": retry_after,
                }
                limited = JSONResponse(body, 429, headers={"Retry-After": str(retry_after)})
                await limited(scope, receive, send)
                return
        await self.app(scope, receive, send)

    def _refusal(self, path: str, headers: Headers) -> JSONResponse | None:
        """A 401 for a caller who has not shown what the settings ask for, else None."""
        settings = self.settings
        basic = settings.BASIC_AUTH_USERNAME and path not in PROBES
        if basic and not basic_authorized(settings, headers):
            challenge = 'Basic realm="volcimage", charset="UTF-8"'
            return _unauthorized("Sign in to use the studio", challenge)
        key = settings.ENABLE_API_KEY_AUTH and not _is_open(path)
        if key and not authorized(settings, headers, _cookies(headers)):
            return _unauthorized("An API key is required", "Bearer")
        return None

    def _client(self, scope: Scope, headers: Headers) -> str:
        # Behind the bundled nginx every peer is nginx: it passes the real address on.
        if self.settings.X_ACCEL_REDIRECT and headers.get("x-real-ip"):
            return headers["x-real-ip"]
        client = scope.get("client")
        return client[0] if client else "unknown"


def _unauthorized(message: str, challenge: str) -> JSONResponse:
    return JSONResponse(
        {"error": "unauthorized", "message": message},
        401,
        headers={"WWW-Authenticate": challenge},
    )


def _limited(method: str, path: str) -> bool:
    # Image files are cheap and a page of history loads dozens of thumbnails at once.
    if method == "GET" and path.startswith("/api/v1/images/"):
        return False
    return path.startswith("/api/") and path not in UNLIMITED_PATHS


def _is_open(path: str) -> bool:
    return path in OPEN_PATHS or path.startswith(OPEN_PREFIXES)


def _cookies(headers: Headers) -> dict[str, str]:
    cookies = {}
    for part in headers.get("cookie", "").split(";"):
        name, _, value = part.strip().partition("=")
        if name:
            cookies[name] = value
    return cookies
