"""The /metrics page: the process's counters plus gauges read from the database."""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from volcimage.core.metrics import IMAGES, QUEUE_DEPTH, STORAGE_BYTES, TASKS
from volcimage.tasks.models import Image, Task


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
