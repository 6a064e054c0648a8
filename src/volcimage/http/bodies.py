"""Request bodies over their route's limit get a 413 before they are read whole: at once when
Content-Length says so, else as soon as the streamed (chunked) body passes the limit.

Only uploads carry files; every other body is JSON of a few KB (500 archive ids: 20 KB)."""

from __future__ import annotations

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from volcimage.core.config import Settings
from volcimage.core.errors import PayloadTooLarge, answer
from volcimage.http.middleware import HttpMiddleware

JSON_LIMIT = 1024 * 1024
MULTIPART_OVERHEAD = 64 * 1024  # part headers and boundaries around the file
UPLOAD_PATH = "/api/v1/uploads"


class _Exceeded(Exception):
    """Raised from `receive` to stop the route reading; the 413 has been sent already."""


class BodyLimit(HttpMiddleware):
    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        super().__init__(app)
        self.upload_limit = settings.MAX_UPLOAD_MB * 1024 * 1024 + MULTIPART_OVERHEAD

    def limit_of(self, scope: Scope) -> int:
        return self.upload_limit if scope["path"] == UPLOAD_PATH else JSON_LIMIT

    async def http(self, scope: Scope, receive: Receive, send: Send) -> None:
        limit = self.limit_of(scope)
        declared = Headers(scope=scope).get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            await _refuse(limit, scope, receive, send)
            return
        received = 0
        started = refused = False

        async def counting() -> Message:
            nonlocal received, refused
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    if not started:
                        refused = True
                        await _refuse(limit, scope, receive, send)
                    raise _Exceeded
            return message

        async def sending(message: Message) -> None:
            nonlocal started
            if refused:  # the route's own answer to the failed read: the 413 was the answer
                return
            started = True
            await send(message)

        try:
            await self.app(scope, counting, sending)
        except _Exceeded:
            if not refused:
                raise


async def _refuse(limit: int, scope: Scope, receive: Receive, send: Send) -> None:
    error = PayloadTooLarge(
        f"The request body is over the {limit:,} bytes this route accepts", {"limit": limit}
    )
    # The server discards the rest of the body as it comes, without keeping it. (Closing the
    # connection instead would cut off a proxy still sending it: nginx then answers 502.)
    response = answer(error)
    await response(scope, receive, send)
