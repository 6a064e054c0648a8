"""Request counts and latencies for /metrics, by route template (never the raw path)."""

from __future__ import annotations

import time

from starlette.types import Message, Receive, Scope, Send

from volcimage.core.metrics import HTTP_REQUESTS, HTTP_SECONDS
from volcimage.http.middleware import HttpMiddleware


class RequestMetrics(HttpMiddleware):
    """Counts and times requests by route template (not raw path: ids would explode labels)."""

    async def http(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        status = 500

        async def record_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, record_status)
        finally:
            route = getattr(scope.get("route"), "path", None) or "unmatched"
            method = scope["method"]
            HTTP_REQUESTS.labels(method, route, str(status)).inc()
            HTTP_SECONDS.labels(method, route).observe(time.perf_counter() - started)
