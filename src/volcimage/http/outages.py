"""What a request that failed outside the product's own errors answers: 503 with Retry-After
when the database or storage is down, busy or saturated (the request may simply be repeated),
else a 500. Both in the error shape, both with the cause logged, and inside the CORS and
security-header middleware, so those headers are on them too."""

from __future__ import annotations

import logging

from starlette.types import Message, Receive, Scope, Send

from volcimage.core.errors import ServiceUnavailable, VolcImageError, answer
from volcimage.core.outages import RETRY_AFTER_SECONDS, is_outage
from volcimage.http.middleware import HttpMiddleware

log = logging.getLogger("volcimage.app")


class Outages(HttpMiddleware):
    async def http(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = False

        async def tracking(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, tracking)
        except Exception as exc:
            if started:  # a stream cut off midway: nothing more can be said
                raise
            headers = {}
            if is_outage(exc):
                cause = getattr(exc, "orig", None) or exc
                log.warning("database or storage unavailable: %s: %s", type(cause).__name__, cause)
                error: VolcImageError = ServiceUnavailable(
                    "The database or storage is busy or unreachable; try again in a moment"
                )
                headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
            else:
                log.exception("request failed: %s %s", scope["method"], scope["path"])
                error = VolcImageError("Something went wrong on our side; it has been logged")
            response = answer(error, headers)
            await response(scope, receive, send)
