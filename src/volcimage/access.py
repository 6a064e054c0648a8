"""Who may call the API, and how often.

Four modes (`Settings.access_mode`): open; an API key (`X-API-Key`, `Authorization: Bearer`, or
the page's session cookie holding an HMAC of the key, never the key); HTTP basic auth for the
whole studio; user accounts (a session cookie holding a random token whose hash is in
`user_sessions`). The API key also works beside accounts, as an admin, for scripts.

Cookies are HttpOnly and SameSite=Strict, and every change made with a cookie must carry the
session's CSRF token in `X-CSRF-Token` (GET /api/v1/session tells the page its token).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import math
import time
from typing import Literal
from urllib.parse import urlsplit

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from limits import RateLimitItemPerMinute
from limits.aio.storage import MemoryStorage
from limits.aio.strategies import MovingWindowRateLimiter
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.datastructures import Headers
from starlette.requests import cookie_parser
from starlette.types import ASGIApp, Receive, Scope, Send

from volcimage import audit
from volcimage.config import Settings
from volcimage.errors import RateLimited, Unauthorized, ValidationError
from volcimage.tasks.deps import (
    ANONYMOUS,
    Caller,
    CallerDep,
    SessionDep,
    State,
    StateDep,
)
from volcimage.text import Text
from volcimage.users import service as users

COOKIE = "volcimage_session"
CSRF_HEADER = "x-csrf-token"
SESSION_PATH = "/api/v1/session"
OPEN_PATHS = (
    "/",
    "/favicon.ico",
    "/api/v1/health",
    "/api/v1/ready",
    SESSION_PATH,
    "/docs",
    "/openapi.json",
)
OPEN_PREFIXES = ("/static/",)
PROBES = ("/api/v1/health", "/api/v1/ready")  # for load balancers and health checks
UNLIMITED_PATHS = ("/api/v1/health", "/api/v1/ready", "/api/v1/events", "/metrics")
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")
GUEST = Caller("anonymous", is_admin=False)  # not signed in where signing in is required

router = APIRouter(prefix="/api/v1", tags=["access"])


def _hmac(settings: Settings, message: str) -> str:
    secret = settings.SECRET_KEY.get_secret_value().encode()
    return hmac.new(secret, message.encode(), hashlib.sha256).hexdigest()


def key_session_token(settings: Settings) -> str:
    key = settings.API_KEY.get_secret_value() if settings.API_KEY else ""
    return _hmac(settings, "session:" + key)


def csrf_token(settings: Settings, cookie: str) -> str:
    return _hmac(settings, "csrf:" + cookie)


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


def _given_key(headers: Headers) -> str:
    bearer = headers.get("authorization", "")
    return headers.get("x-api-key") or (bearer[7:] if bearer.lower().startswith("bearer ") else "")


class UserPublic(BaseModel):
    username: str
    is_admin: bool


class SessionInfo(BaseModel):
    mode: Literal["open", "api_key", "basic", "accounts"]
    user: UserPublic | None = Field(None, description="The signed-in user (accounts mode)")
    signed_in: bool
    csrf_token: str | None = Field(None, description="Send as X-CSRF-Token with every change")


class Login(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    api_key: Text | None = Field(None, min_length=1, max_length=500)
    username: Text | None = Field(None, min_length=1, max_length=50)
    password: Text | None = Field(None, min_length=1, max_length=200)


def _session_info(settings: Settings, caller: Caller, cookie: str | None) -> SessionInfo:
    signed_in = caller is not GUEST
    user = None
    if settings.access_mode == "accounts" and caller.user_id is not None:
        user = UserPublic(username=caller.name, is_admin=caller.is_admin)
    csrf = csrf_token(settings, cookie) if cookie and signed_in else None
    return SessionInfo(mode=settings.access_mode, user=user, signed_in=signed_in, csrf_token=csrf)


@router.get("/session", response_model=SessionInfo)
async def session_info(request: Request, state: StateDep, caller: CallerDep) -> SessionInfo:
    """How to sign in, who is signed in, and the CSRF token for changes made with the cookie."""
    return _session_info(state.settings, caller, request.cookies.get(COOKIE))


@router.post("/session", response_model=SessionInfo, responses={401: {}, 429: {}})
async def login(body: Login, request: Request, session: SessionDep, state: StateDep) -> Response:
    """Signs the page in: with the API key, or with a username and password (accounts mode)."""
    settings = state.settings
    client = audit.client_of(request) or "unknown"
    attempts = RateLimitItemPerMinute(settings.LOGIN_ATTEMPTS_PER_MINUTE)
    if not await state.login_attempts.test(attempts, client):
        raise RateLimited("Too many failed sign-ins; wait a minute", retry_after=60)
    caller = await _check_login(body, session, settings)
    if caller is None:
        await state.login_attempts.hit(attempts, client)
        audit.record(session, request, "login.failed", body.username, actor=body.username)
        await session.commit()
        what = "username or password" if settings.access_mode == "accounts" else "API key"
        raise Unauthorized(f"The {what} is not valid")
    if caller.user_id is not None:
        token = await users.start_session(session, caller.user_id, settings)
    else:
        token = key_session_token(settings)
    audit.record(session, request, "login", caller.name, actor=caller.name)
    await session.commit()
    info = _session_info(settings, caller, token)
    response = JSONResponse(info.model_dump(mode="json"))
    secure = request.headers.get("x-forwarded-proto", request.url.scheme) == "https"
    response.set_cookie(
        COOKIE,
        token,
        max_age=settings.SESSION_HOURS * 3600,
        httponly=True,
        samesite="strict",
        secure=secure,
        path="/",
    )
    return response


async def _check_login(body: Login, session: AsyncSession, settings: Settings) -> Caller | None:
    mode = settings.access_mode
    if mode == "accounts":
        if not body.username or not body.password:
            raise ValidationError("Give a username and a password", {"field": "username"})
        user = await users.authenticate(session, body.username, body.password)
        return None if user is None else Caller(user.username, user.id, user.is_admin)
    if mode == "api_key":
        if not body.api_key:
            raise ValidationError("Give the API key", {"field": "api_key"})
        return Caller("session") if key_matches(settings, body.api_key) else None
    raise ValidationError(f"Nothing to sign in to: access mode is {mode}", {"mode": mode})


@router.delete("/session", status_code=204)
async def logout(request: Request, session: SessionDep, caller: CallerDep) -> Response:
    token = request.cookies.get(COOKIE)
    if token and caller.user_id is not None:
        await users.end_session(session, token)
        audit.record(session, request, "logout", caller.name)
        await session.commit()
    response = Response(status_code=204)
    response.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict")
    return response


class AccessControl:
    """Finds out who is calling (`request.state.caller`), refuses those who may not, checks the
    CSRF token of cookie sessions, then applies a per-client request budget."""

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.settings = settings
        self.limiter = MovingWindowRateLimiter(MemoryStorage())
        per_minute = settings.RATE_LIMIT_PER_MINUTE
        self.limit = RateLimitItemPerMinute(per_minute) if per_minute else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            refusal, caller = await self._admit(scope)
            if refusal is not None or not self._same_site(scope):
                await send({"type": "websocket.close", "code": 1008})  # the handshake gets 403
                return
            scope.setdefault("state", {})["caller"] = caller
            await self.app(scope, receive, send)
            return
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        refusal, caller = await self._admit(scope)
        if refusal is not None:
            await refusal(scope, receive, send)
            return
        scope.setdefault("state", {})["caller"] = caller
        if self.limit is not None and _limited(scope["method"], scope["path"]):
            client = self._client(scope, Headers(scope=scope))
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

    async def _admit(self, scope: Scope) -> tuple[JSONResponse | None, Caller]:
        """(a refusal or None, the caller)."""
        settings = self.settings
        path: str = scope["path"]
        headers = Headers(scope=scope)
        if settings.access_mode == "open":
            return None, ANONYMOUS
        if settings.access_mode == "basic":
            if path in PROBES or basic_authorized(settings, headers):
                return None, Caller(settings.BASIC_AUTH_USERNAME or "basic")
            challenge = 'Basic realm="volcimage", charset="UTF-8"'
            return _refuse(401, "unauthorized", "Sign in to use the studio", challenge), GUEST
        open_path = path in OPEN_PATHS or path.startswith(OPEN_PREFIXES)
        given = _given_key(headers)
        if given and settings.ENABLE_API_KEY_AUTH:
            if key_matches(settings, given):
                return None, Caller("api-key")
            if not open_path:
                return _refuse(401, "unauthorized", "The API key is not valid", "Bearer"), GUEST
        cookie = cookie_parser(headers.get("cookie", "")).get(COOKIE, "")
        caller = await self._cookie_caller(scope, cookie) if cookie else None
        if caller is None:
            if open_path:
                return None, GUEST
            accounts = settings.access_mode == "accounts"
            message = "Sign in first" if accounts else "An API key is required"
            return _refuse(401, "unauthorized", message, "Bearer"), GUEST
        method = scope.get("method", "GET")  # a WebSocket handshake is a GET
        unsafe = method not in SAFE_METHODS
        if unsafe and not (path == SESSION_PATH and method == "POST"):
            sent = headers.get(CSRF_HEADER, "")
            if not hmac.compare_digest(sent.encode(), csrf_token(settings, cookie).encode()):
                message = "The CSRF token is missing or wrong; reload the page"
                return _refuse(403, "csrf_failed", message), caller
        return None, caller

    async def _cookie_caller(self, scope: Scope, cookie: str) -> Caller | None:
        settings = self.settings
        if settings.access_mode == "api_key":
            valid = hmac.compare_digest(cookie.encode(), key_session_token(settings).encode())
            return Caller("session") if valid else None
        state: State = scope["app"].state.volcimage
        async with state.sessionmaker() as session:
            return await users.caller_for(session, cookie)

    def _same_site(self, scope: Scope) -> bool:
        """Browsers send cookies with WebSocket handshakes from any site and no CORS applies:
        accept only the studio's own origin or one of ALLOWED_ORIGINS."""
        headers = Headers(scope=scope)
        origin = headers.get("origin")
        if origin is None:  # not a browser
            return True
        same = urlsplit(origin).netloc == headers.get("host")
        return same or origin in self.settings.allowed_origins

    def _client(self, scope: Scope, headers: Headers) -> str:
        # Behind the bundled nginx every peer is nginx: it passes the real address on.
        if self.settings.X_ACCEL_REDIRECT and headers.get("x-real-ip"):
            return headers["x-real-ip"]
        client = scope.get("client")
        return client[0] if client else "unknown"


def _refuse(status: int, error: str, message: str, challenge: str | None = None) -> JSONResponse:
    headers = {"WWW-Authenticate": challenge} if challenge else None
    return JSONResponse({"error": error, "message": message}, status, headers=headers)


def _limited(method: str, path: str) -> bool:
    # Image files are cheap and a page of history loads dozens of thumbnails at once.
    if method == "GET" and path.startswith("/api/v1/images/"):
        return False
    return path.startswith("/api/") and path not in UNLIMITED_PATHS
