"""Prometheus metrics: per-process counters from the app and runner, plus queue and storage
figures read from the database at scrape time (shared by every process)."""

from __future__ import annotations

import time

from prometheus_client import CONTENT_TYPE_LATEST, Counter, Gauge, Histogram, generate_latest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.types import Message, Receive, Scope, Send

from volcimage.asgi import HttpMiddleware
from volcimage.tasks.models import Image, Task

HTTP_REQUESTS = Counter(
    "volcimage_http_requests_total", "HTTP requests answered", ["method", "route", "status"]
)
HTTP_SECONDS = Histogram(
    "volcimage_http_request_duration_seconds", "Time to answer HTTP requests", ["method", "route"]
)
UPSTREAM_CALLS = Counter(
    "volcimage_upstream_calls_total",
    "Paid upstream calls by outcome (ok, or the upstream error code)",
    ["provider", "model", "outcome"],
)
UPSTREAM_SECONDS = Histogram(
    "volcimage_upstream_call_duration_seconds",
    "Upstream call time, submit to answer",
    ["provider", "model"],
    buckets=(0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300),
)
IMAGES_STORED = Counter("volcimage_images_stored_total", "Images stored by this process")
TASKS = Gauge("volcimage_tasks", "Tasks in the database by status", ["status"])
QUEUE_DEPTH = Gauge("volcimage_queue_depth", "Tasks waiting to run (pending or retrying)")
IMAGES = Gauge("volcimage_images", "Images kept")
STORAGE_BYTES = Gauge("volcimage_storage_bytes", "Bytes of original images kept")


async def render(session: AsyncSession) -> tuple[bytes, str]:
    counts = dict(
        (await session.execute(select(Task.status, func.count()).group_by(Task.status))).all()
    )
    for status in ("pending", "processing", "retrying", "completed", "failed", "cancelled"):
        TASKS.labels(status).set(counts.get(status, 0))
    QUEUE_DEPTH.set(counts.get("pending", 0) + counts.get("retrying", 0))
    images, size = (await session.execute(select(func.count(), func.sum(Image.file_size)))).one()
    IMAGES.set(images or 0)
    STORAGE_BYTES.set(size or 0)
    return generate_latest(), CONTENT_TYPE_LATEST


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
