"""The one check-and-reserve for paid work.

The checks count rows, and the work is admitted by inserting or re-queuing a row: between the
two another request could pass the same checks (30 concurrent one-image tasks against a budget
of 5 had 19 admitted). So `reserve` first takes a lock that every admission takes, held to the
end of the caller's transaction: PostgreSQL's transaction-scoped advisory lock, shared by every
process; on SQLite, BEGIN IMMEDIATE (the database's one write lock), so the caller must call
it before any other write of its transaction.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import func, or_, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from volcimage.auth.models import User
from volcimage.core.config import Settings
from volcimage.core.db import utcnow
from volcimage.core.errors import RateLimited
from volcimage.tasks.models import Task, TaskStatus

ADMISSION_LOCK = 0x766F6C65  # pg advisory lock key
ACTIVE_STATUSES = (TaskStatus.PENDING, TaskStatus.PROCESSING, TaskStatus.RETRYING)
QUEUE_FULL_RETRY_SECONDS = 30


async def reserve(
    session: AsyncSession,
    settings: Settings,
    owner_id: int | None,
    images: int,
    *,
    requeued: Task | None = None,
) -> None:
    """Admits `images` more for `owner_id` (None: no user), or raises RateLimited. `requeued`:
    the task being queued again, whose earlier admission no longer counts."""
    await _lock(session)
    waiting = await session.scalar(
        select(func.count()).select_from(Task).where(Task.status.in_(ACTIVE_STATUSES))
    )
    if (waiting or 0) >= settings.MAX_PENDING_TASKS:
        raise RateLimited(
            f"The queue is full ({waiting} tasks waiting); try again shortly",
            retry_after=QUEUE_FULL_RETRY_SECONDS,
        )
    excluded = requeued.id if requeued is not None else None
    if settings.DAILY_IMAGE_QUOTA:
        used = await images_admitted_today(session, excluding=excluded)
        _within("Today's image budget", used, images, settings.DAILY_IMAGE_QUOTA)
    user = await session.get(User, owner_id) if owner_id is not None else None
    limit = daily_limit(user, settings) if user is not None else None
    if user is not None and limit is not None:
        used = await images_admitted_today(session, user.id, excluding=excluded)
        _within("Your daily image quota", used, images, limit)


async def _lock(session: AsyncSession) -> None:
    if session.get_bind().dialect.name == "postgresql":
        await session.execute(select(func.pg_advisory_xact_lock(ADMISSION_LOCK)))
    else:
        await session.execute(text("BEGIN IMMEDIATE"))


def _within(name: str, used: int, asked: int, limit: int) -> None:
    if used + asked > limit:
        raise RateLimited(
            f"{name} is used: {used} of {limit} images asked for; it resets at 00:00 UTC",
            retry_after=seconds_to_midnight(),
            code="quota_exceeded",
        )


def daily_limit(user: User, settings: Settings) -> int | None:
    """The user's images a day: their own figure, else USER_DAILY_IMAGE_QUOTA; None = no limit."""
    limit = user.daily_image_quota
    if limit is None:
        limit = settings.USER_DAILY_IMAGE_QUOTA
    return limit or None


async def images_admitted_today(
    session: AsyncSession, owner_id: int | None = None, *, excluding: int | None = None
) -> int:
    """Images of the tasks admitted (made or retried) today, by everyone or by one user, less
    those that ended without any (failed or cancelled)."""
    spent = or_(
        Task.status.not_in([TaskStatus.FAILED, TaskStatus.CANCELLED]),
        Task.images.any(),
    )
    conditions = [Task.admitted_at >= start_of_day(), spent]
    if owner_id is not None:
        conditions.append(Task.owner_id == owner_id)
    if excluding is not None:
        conditions.append(Task.id != excluding)
    total = await session.scalar(
        select(func.coalesce(func.sum(Task.num_images), 0)).where(*conditions)
    )
    return int(total or 0)


def start_of_day() -> datetime:
    return utcnow().replace(hour=0, minute=0, second=0, microsecond=0)


def seconds_to_midnight() -> int:
    return max(1, int((start_of_day() + timedelta(days=1) - utcnow()).total_seconds()))
