"""Who may call the API, and how often.

Four modes (`Settings.access_mode`): open; an API key (`X-API-Key`, `Authorization: Bearer`, or
the page's session cookie); HTTP basic auth for the whole studio; user accounts. The page's
cookie holds a random token per sign-in whose hash is in `user_sessions`, so signing out ends
it. The API key also works beside accounts, as an admin, for scripts.

Cookies are HttpOnly and SameSite=Strict, and every change made with a cookie must carry the
session's CSRF token in `X-CSRF-Token` (GET /api/v1/session tells the page its token). Changes
from another site's page (its `Origin`) are refused unless ALLOWED_ORIGINS names it. Failed
credentials of every kind count against the client's LOGIN_ATTEMPTS_PER_MINUTE.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import math
import time
from urllib.parse import urlsplit

from fastapi.responses import JSONResponse
from limits import RateLimitItemPerMinute
from limits.aio.storage import MemoryStorage
from limits.aio.strategies import MovingWindowRateLimiter
from starlette.datastructures import Headers
from starlette.requests import HTTPConnection, cookie_parser
from starlette.types import ASGIApp, Receive, Scope, Send

from volcimage.auth import sessions
from volcimage.auth.visibility import ANONYMOUS, GUEST, Caller
from volcimage.core.config import Settings
from volcimage.core.errors import RateLimited, VolcImageError, answer
from volcimage.http.deps import client_of, get_state
from volcimage.http.state import State

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
ADMIN_PREFIXES = ("/emulator/_emulator/",)  # demo mode: faults and latency for everyone
RETRY_AFTER = 60  # seconds: a one-minute window of failed credentials
KEY_SESSION = Caller("session", is_admin=True, by_cookie=True)  # the page, with the API key


def _hmac(settings: Settings, message: str) -> str:
    secret = settings.SECRET_KEY.get_secret_value().encode()
    return hmac.new(secret, message.encode(), hashlib.sha256).hexdigest()


def key_fingerprint(settings: Settings) -> str:
    """Stored with the API key's sign-ins: a new key ends them."""
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


async def may_try(state: State, connection: HTTPConnection) -> bool:
    """Whether the client may present credentials: not after too many failures this minute."""
    item = RateLimitItemPerMinute(state.settings.LOGIN_ATTEMPTS_PER_MINUTE)
    return await state.login_attempts.test(item, client_of(connection) or "unknown")


async def failed(state: State, connection: HTTPConnection) -> None:
    item = RateLimitItemPerMinute(state.settings.LOGIN_ATTEMPTS_PER_MINUTE)
    await state.login_attempts.hit(item, client_of(connection) or "unknown")


async def cookie_caller(state: State, cookie: str) -> Caller | None:
    """Who the session cookie stands for now, or None (signed out, expired, disabled)."""
    settings = state.settings
    if not cookie or settings.access_mode not in ("api_key", "accounts"):
        return None
    async with state.sessionmaker() as session:
        if settings.access_mode == "accounts":
            return await sessions.caller_for(session, cookie)
        valid = await sessions.key_session_valid(session, cookie, key_fingerprint(settings))
        return KEY_SESSION if valid else None


async def recheck(connection: HTTPConnection, caller: Caller) -> Caller | None:
    """The caller of an open stream as its session now stands; None once it has ended. Only a
    cookie's sign-in can end: a key or basic auth holds until the settings change."""
    if not caller.by_cookie:
        return caller
    return await cookie_caller(get_state(connection), connection.cookies.get(COOKIE, ""))


class AccessControl:
    """Finds out who is calling (`request.state.caller`), refuses those who may not, checks the
    CSRF token of cookie sessions and the origin of changes, and applies a per-client request
    budget, counting refused requests too."""

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.settings = settings
        self.limiter = MovingWindowRateLimiter(MemoryStorage())
        per_minute = settings.RATE_LIMIT_PER_MINUTE
        self.limit = RateLimitItemPerMinute(per_minute) if per_minute else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        refusal, caller = await self._check(scope)
        if refusal is not None:
            if scope["type"] == "websocket":
                await send({"type": "websocket.close", "code": 1008})  # the handshake gets 403
            else:
                await refusal(scope, receive, send)
            return
        scope.setdefault("state", {})["caller"] = caller
        await self.app(scope, receive, send)

    async def _check(self, scope: Scope) -> tuple[JSONResponse | None, Caller]:
        """(a refusal or None, the caller)."""
        method = scope.get("method", "GET")  # a WebSocket handshake is a GET
        changes = method not in SAFE_METHODS or scope["type"] == "websocket"
        if changes and not self._same_site(scope):
            message = "Changes from another site's page are refused (see ALLOWED_ORIGINS)"
            return _refuse(403, "forbidden", message), GUEST
        path: str = scope["path"]
        if self.limit is not None and scope["type"] == "http" and _limited(method, path):
            client = client_of(HTTPConnection(scope)) or "unknown"
            if not await self.limiter.hit(self.limit, client):
                stats = await self.limiter.get_window_stats(self.limit, client)
                retry_after = max(1, math.ceil(stats.reset_time - time.time()))
                message = f"More than {self.settings.RATE_LIMIT_PER_MINUTE} requests a minute"
                return _slow_down(message + "; slow down", retry_after), GUEST
        refusal, caller = await self._admit(scope)
        if refusal is None and path.startswith(ADMIN_PREFIXES) and not caller.is_admin:
            return _refuse(403, "forbidden", "Only an admin may drive the emulator"), caller
        return refusal, caller

    async def _admit(self, scope: Scope) -> tuple[JSONResponse | None, Caller]:
        settings = self.settings
        if settings.access_mode == "open":
            return None, ANONYMOUS
        state = get_state(HTTPConnection(scope))
        headers = Headers(scope=scope)
        given = _given_key(headers) if settings.access_mode != "basic" else ""
        cookie = cookie_parser(headers.get("cookie", "")).get(COOKIE, "")
        presented = given or cookie or headers.get("authorization", "")
        if presented and not await may_try(state, HTTPConnection(scope)):
            return _slow_down("Too many failed sign-ins; wait a minute", RETRY_AFTER), GUEST
        refusal, caller, wrong = await self._identify(scope, state, headers, given, cookie)
        if wrong:
            await failed(state, HTTPConnection(scope))
        return refusal, caller

    async def _identify(
        self, scope: Scope, state: State, headers: Headers, given: str, cookie: str
    ) -> tuple[JSONResponse | None, Caller, bool]:
        """(a refusal or None, the caller, whether credentials given were wrong)."""
        settings = self.settings
        path: str = scope["path"]
        if settings.access_mode == "basic":
            if basic_authorized(settings, headers):
                caller = Caller(settings.BASIC_AUTH_USERNAME or "basic", is_admin=True)
                return None, caller, False
            wrong = "authorization" in headers
            if path in PROBES:
                return None, GUEST, wrong
            challenge = 'Basic realm="volcimage", charset="UTF-8"'
            refusal = _refuse(401, "unauthorized", "Sign in to use the studio", challenge)
            return refusal, GUEST, wrong
        open_path = path in OPEN_PATHS or path.startswith(OPEN_PREFIXES)
        wrong_key = False
        if given and settings.ENABLE_API_KEY_AUTH:
            if key_matches(settings, given):
                return None, Caller("api-key", is_admin=True), False
            wrong_key = True
            if not open_path:
                refusal = _refuse(401, "unauthorized", "The API key is not valid", "Bearer")
                return refusal, GUEST, True
        found = await cookie_caller(state, cookie) if cookie else None
        wrong = wrong_key or (bool(cookie) and found is None)
        if found is None:
            if open_path:
                return None, GUEST, wrong
            accounts = settings.access_mode == "accounts"
            message = "Sign in first" if accounts else "An API key is required"
            return _refuse(401, "unauthorized", message, "Bearer"), GUEST, wrong
        method = scope.get("method", "GET")
        unsafe = method not in SAFE_METHODS
        if unsafe and not (path == SESSION_PATH and method == "POST"):
            sent = headers.get(CSRF_HEADER, "")
            if not hmac.compare_digest(sent.encode(), csrf_token(settings, cookie).encode()):
                message = "The CSRF token is missing or wrong; reload the page"
                return _refuse(403, "csrf_failed", message), found, wrong
        return None, found, wrong

    def _same_site(self, scope: Scope) -> bool:
        """Browsers send cookies with WebSocket handshakes from any site and no CORS applies, and
        a simple cross-site POST needs no preflight: accept only the studio's own origin or one
        of ALLOWED_ORIGINS."""
        headers = Headers(scope=scope)
        origin = headers.get("origin")
        if origin is None:  # not a browser
            return True
        allowed = self.settings.allowed_origins
        same = urlsplit(origin).netloc == headers.get("host")
        return same or origin in allowed or "*" in allowed


def _slow_down(message: str, retry_after: int) -> JSONResponse:
    return answer(RateLimited(message, retry_after))


def _refuse(status: int, error: str, message: str, challenge: str | None = None) -> JSONResponse:
    headers = {"WWW-Authenticate": challenge} if challenge else None
    return answer(VolcImageError(message, code=error, status_code=status), headers)


def _limited(method: str, path: str) -> bool:
    # Image files are cheap and a page of history loads dozens of thumbnails at once.
    if method == "GET" and path.startswith("/api/v1/images/"):
        return False
    api = path.startswith("/api/") and path not in UNLIMITED_PATHS
    return api or path.startswith(ADMIN_PREFIXES)
