"""Security headers on every response. The page runs Alpine's CSP build, so scripts need
neither 'unsafe-inline' nor 'unsafe-eval'."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Sequence

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from volcimage.http.middleware import HttpMiddleware

HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
    "Cross-Origin-Opener-Policy": "same-origin",
}


def content_security_policy(image_origin: str | None = None, scripts: Sequence[str] = ()) -> str:
    """Everything from this origin only; images also from `image_origin` (the bucket that
    presigned downloads redirect to); inline `scripts` (Swagger UI's one) by their hash alone."""
    hashes = [
        f"'sha256-{base64.b64encode(hashlib.sha256(s.encode()).digest()).decode()}'"
        for s in scripts
    ]
    images = [image_origin] if image_origin else []
    return "; ".join(
        [
            "default-src 'self'",
            " ".join(["script-src 'self'", *hashes]),
            "style-src 'self'",
            " ".join(["img-src 'self' data: blob:", *images]),
            "connect-src 'self'",
            "object-src 'none'",
            "base-uri 'none'",
            "form-action 'self'",
            "frame-ancestors 'none'",
        ]
    )


class SecurityHeaders(HttpMiddleware):
    """Adds HEADERS and the policy to every response that does not set its own (/docs does)."""

    def __init__(self, app: ASGIApp, image_origin: str | None = None) -> None:
        super().__init__(app)
        self.csp = content_security_policy(image_origin)

    async def http(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in HEADERS.items():
                    headers.setdefault(name, value)
                headers.setdefault("Content-Security-Policy", self.csp)
            await send(message)

        await self.app(scope, receive, send_with_headers)
