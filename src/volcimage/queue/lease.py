"""A task under a lease: claimed from the `tasks` table, renewed by a heartbeat that also
notices cancellation, and ended: retried later, finished, or handed back to the queue.

`settle` decides how an attempt ends from what its slots (paid calls) came to; it is pure.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Callable, Collection, Coroutine, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, func, or_, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from volcimage.core.config import Settings
from volcimage.core.db import utcnow
from volcimage.core.errors import UpstreamError
from volcimage.core.outages import is_outage
from volcimage.providers.base import RETRY_AFTER_CAP, UpstreamImage
from volcimage.providers.policy import is_limit
from volcimage.queue.limits import (
    CANDIDATES,
    LOAD_COLUMNS,
    Limits,
    Usage,
    load_of,
    pause,
    read_usage,
    slots_of,
)
from volcimage.queue.writes import Writer
from volcimage.tasks.models import Task, TaskStatus
from volcimage.tasks.params import TaskParams, references_of
from volcimage.tasks.service import get_task_by_pk

log = logging.getLogger("volcimage.runner")

# A task whose process keeps dying is given up after this many extra claims.
CRASH_ALLOWANCE = 3
CLAIM_LOCK = 0x766F6C64  # pg advisory lock key of claiming (the caps and the upstream's limits)
GROUP_SHORT = "the upstream ended the group with fewer images than asked for"
CANCELLED = "Cancelled by the user"


class LeaseLost(Exception):
    """Another runner owns the task now (our lease expired); stop without writing."""


@dataclass(frozen=True)
class TaskSnapshot:
    """The immutable inputs of a task, read once per attempt."""

    pk: int
    task_id: str
    params: TaskParams
    references: list[dict[str, str]]  # where each reference image is (params.references_of)
    attempts: int
    retry_count: int
    retried_for: str | None  # the code the last attempt was retried for

    @classmethod
    def of(cls, task: Task) -> TaskSnapshot:
        return cls(
            pk=task.id,
            task_id=task.task_id,
            params=TaskParams.of_task(task),
            references=references_of(task),
            attempts=task.attempts,
            retry_count=task.retry_count,
            retried_for=task.error_code if task.retry_count else None,
        )

    @property
    def slots(self) -> int:
        return slots_of(self.params.num_images, self.params.one_call)


@dataclass
class SlotOutcome:
    stored: int
    refused: list[UpstreamImage]
    cut_off: str | None = None  # why a group's stream ended early


@dataclass(frozen=True)
class Retry:
    code: str
    message: str
    retry_after: float | None  # the upstream's Retry-After, if it gave one
    limited: bool = False  # refused for the upstream's limit: the whole model waits


@dataclass(frozen=True)
class Finish:
    status: TaskStatus
    code: str | None = None
    message: str | None = None


def backoff_seconds(settings: Settings, retry_count: int, retry_after: float | None) -> float:
    """Exponential backoff with full jitter, never sooner than the upstream's Retry-After up
    to RETRY_AFTER_CAP (a day's Retry-After would hold the task a day)."""
    ceiling = min(settings.RETRY_MAX_DELAY, settings.RETRY_BASE_DELAY * 2**retry_count)
    delay = random.uniform(ceiling / 2, ceiling)
    return max(delay, min(retry_after or 0.0, RETRY_AFTER_CAP))


def settle(
    results: Sequence[object],
    *,
    asked: int,
    retry_count: int,
    max_retries: int,
    retried_for: str | None = None,
) -> Retry | Finish:
    """How an attempt ends, from its slots' results (a SlotOutcome or the exception each
    raised). Re-raises what is not the task's outcome: a lost lease, a cancellation, a bug.
    An error retried only once (an output refusal) is final when the last attempt was
    retried for the same code."""
    for result in results:
        if isinstance(result, (LeaseLost, asyncio.CancelledError)):
            raise result
    errors = [r for r in results if isinstance(r, BaseException)]
    outcomes = [r for r in results if isinstance(r, SlotOutcome)]
    stored = sum(o.stored for o in outcomes)
    refused = [img for o in outcomes for img in o.refused]
    for error in errors:
        if not isinstance(error, (UpstreamError, OSError)):
            raise error
    retryable = [e for e in errors if isinstance(e, OSError) or _retryable(e, retried_for)]
    if retryable and retry_count < max_retries:
        first = retryable[0]
        retry_after = getattr(first, "retry_after", None)
        limited = isinstance(first, UpstreamError) and is_limit(first)
        return Retry(_error_code(first), _error_message(first), retry_after, limited)
    if errors:
        first = (retryable or errors)[0]
        code, message = _error_code(first), _error_message(first)
        if retryable:
            message = f"{message} (gave up after {retry_count} retries)"
        if stored:
            made = f"{stored} of {asked} images made; {message}"
            return Finish(TaskStatus.COMPLETED, code=code, message=made)
        return Finish(TaskStatus.FAILED, code=code, message=message)
    status = TaskStatus.COMPLETED if stored else TaskStatus.FAILED
    if refused:
        code = refused[0].error_code or "ImageRefused"
        message = f"{len(refused)} image(s) refused by the upstream: {refused[0].error_message}"
        return Finish(status, code=code, message=message)
    if stored < asked:  # a group the upstream ended early, or was cut off
        reason = next((o.cut_off for o in outcomes if o.cut_off), GROUP_SHORT)
        message = f"{stored} of {asked} images made: {reason}"
        return Finish(status, code="partial" if stored else "NoImage", message=message)
    return Finish(TaskStatus.COMPLETED)


def _retryable(error: BaseException, retried_for: str | None) -> bool:
    if not isinstance(error, UpstreamError) or not error.retryable:
        return False
    return not (error.once and error.upstream_code == retried_for)


def _error_code(error: BaseException) -> str:
    if isinstance(error, UpstreamError):
        return error.upstream_code
    return "StorageError" if isinstance(error, OSError) else "InternalError"


def _error_message(error: BaseException) -> str:
    if isinstance(error, UpstreamError):
        return error.message
    if isinstance(error, OSError):
        return f"Could not write the image ({error.strerror or type(error).__name__})"
    return "Internal error; see server log"


class Lease:
    def __init__(self, settings: Settings, writer: Writer, owner: str, limits: Limits) -> None:
        self.settings = settings
        self.writer = writer
        self.owner = owner
        self.limits = limits
        self._work: dict[int, tuple[asyncio.Task[None], list[str]]] = {}
        self._is_postgres = not settings.is_sqlite

    @property
    def duration(self) -> timedelta:
        return timedelta(seconds=self.settings.TASK_LEASE_SECONDS)

    # ---- claiming ------------------------------------------------------------------------

    async def claim(self, limit: int, running: Collection[int]) -> list[int]:
        """Up to `limit` tasks leased to this runner; `running` are its own, still at work.
        Only tasks within the upstream's limits are taken (queue/limits.py)."""
        async with self.writer.sessionmaker() as session:
            # count and claim as one step across workers: the advisory lock, or on SQLite
            # its one write lock, taken before the counts are read
            if self._is_postgres:
                await session.execute(select(func.pg_advisory_xact_lock(CLAIM_LOCK)))
            else:
                await session.execute(text("BEGIN IMMEDIATE"))
            # the time once the lock is held: a task committed while this claim waited for it
            # must look older than its claim (the page drops an event older than what it has)
            now = utcnow()
            usage = await read_usage(session, self.limits, now)
            # MAX_CONCURRENT_TASKS holds for the whole deployment, every worker together
            limit = min(limit, self.settings.MAX_CONCURRENT_TASKS - usage.under_way)
            pks = await self._claim_up_to(session, usage, limit, now, running) if limit > 0 else []
            await session.commit()
        for pk in pks:
            await self.writer.publish(pk, "task.updated")
        return pks

    async def _claim_up_to(
        self,
        session: AsyncSession,
        usage: Usage,
        limit: int,
        now: datetime,
        running: Collection[int],
    ) -> list[int]:
        claimable = or_(
            and_(
                Task.status.in_([TaskStatus.PENDING, TaskStatus.RETRYING]),
                Task.run_after <= now,
            ),
            # an expired lease, but never one of ours still running: a heartbeat that came
            # late under load must not start the same task twice in this process
            and_(
                Task.status == TaskStatus.PROCESSING,
                Task.lease_expires_at < now,
                Task.id.not_in(list(running)),
            ),
        )
        # past the models that can take nothing now, in queue order; `choose` skips a task
        # that does not fit and goes on with the others (no head-of-line blocking)
        candidates = await session.execute(
            select(*LOAD_COLUMNS)
            .where(claimable, Task.model.not_in(self.limits.full(usage)))
            .order_by(Task.run_after, Task.id)
            .limit(CANDIDATES)
        )
        chosen = self.limits.choose(usage, [load_of(row) for row in candidates], limit)
        if not chosen:
            return []
        stmt = (
            update(Task)
            .where(Task.id.in_(chosen), claimable)
            .values(
                status=TaskStatus.PROCESSING,
                lease_owner=self.owner,
                lease_expires_at=now + self.duration,
                attempts=Task.attempts + 1,
                started_at=func.coalesce(Task.started_at, now),
                claimed_at=now,
                updated_at=now,
            )
            .returning(Task.id)
            .execution_options(synchronize_session=False)
        )
        return list((await session.scalars(stmt)).all())

    async def begin(self, pk: int) -> TaskSnapshot | None:
        """The claimed task's inputs, or None when there is nothing to run: it is gone, was
        cancelled meanwhile, or its processes kept dying (then it is finished here)."""
        async with self.writer.sessionmaker() as session:
            task = await get_task_by_pk(session, pk)
            if task is None:
                return None
            if task.cancel_requested:
                await self.finish(pk, TaskStatus.CANCELLED, code="cancelled", message=CANCELLED)
                return None
            if task.attempts > self.settings.MAX_RETRY_COUNT + CRASH_ALLOWANCE + 1:
                await self.finish(
                    pk,
                    TaskStatus.FAILED,
                    code="TooManyAttempts",
                    message=f"Gave up after {task.attempts - 1} attempts",
                )
                return None
            return TaskSnapshot.of(task)

    # ---- holding -------------------------------------------------------------------------

    async def hold(self, pk: int, run: Callable[[], Coroutine[Any, Any, None]]) -> None:
        """Runs a task under a heartbeat that renews the lease and notices cancellation."""
        work = asyncio.create_task(run())
        stopped_because: list[str] = []
        self._work[pk] = (work, stopped_because)
        beat = asyncio.create_task(self._heartbeat(pk, work, stopped_because))
        try:
            await work
        except LeaseLost:
            log.warning("lease lost; another runner has the task", extra={"task_pk": pk})
        except asyncio.CancelledError:
            if stopped_because == ["cancel"]:
                await self.finish(pk, TaskStatus.CANCELLED, code="cancelled", message=CANCELLED)
            elif stopped_because == ["lost"]:
                log.warning("lease lost; another runner has the task", extra={"task_pk": pk})
            else:  # this runner is shutting down: hand the task back at once
                await self.release(pk)
                raise
        except Exception as exc:
            if is_outage(exc):  # the database, not the task: it goes back to the queue
                log.warning("database unavailable; task handed back", extra={"task_pk": pk})
                await self.release(pk)
            else:
                log.exception("task crashed", extra={"task_pk": pk})
                await self.finish(
                    pk,
                    TaskStatus.FAILED,
                    code="InternalError",
                    message="Internal error; see server log",
                )
        finally:
            self._work.pop(pk, None)
            beat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await beat

    def cancel_local(self, pk: int) -> None:
        """Stops a task held in this process at once (the bus tells of a cancel request)."""
        work, stopped_because = self._work.get(pk, (None, None))
        if work is not None and stopped_because is not None and not stopped_because:
            stopped_because.append("cancel")
            work.cancel()

    async def _heartbeat(self, pk: int, work: asyncio.Task[None], reason: list[str]) -> None:
        interval = self.settings.TASK_LEASE_SECONDS / 3
        while not work.done():
            await asyncio.sleep(interval)
            renew = (
                update(Task)
                .where(Task.id == pk, Task.lease_owner == self.owner)
                .values(lease_expires_at=utcnow() + self.duration)
                .returning(Task.cancel_requested)
                .execution_options(synchronize_session=False)
            )
            row = (await self.writer.execute(renew)).first()
            if row is None or row[0]:
                reason.append("lost" if row is None else "cancel")
                work.cancel()
                return

    # ---- ending --------------------------------------------------------------------------

    async def conclude(self, pk: int, end: Retry | Finish, retry_count: int, model: str) -> None:
        if isinstance(end, Retry):
            delay = backoff_seconds(self.settings, retry_count, end.retry_after)
            if end.limited:  # the limit is the model's: its other tasks wait too, not others'
                until = utcnow() + timedelta(seconds=delay)
                await self.writer.execute(pause(model, until, end.code, postgres=self._is_postgres))
                log.info("model paused", extra={"model": model, "delay": round(delay, 2)})
            await self.schedule_retry(pk, end.code, end.message, delay)
        else:
            await self.finish(pk, end.status, code=end.code, message=end.message)

    async def schedule_retry(self, pk: int, code: str, message: str, delay: float) -> None:
        now = utcnow()
        await self._update_owned(
            pk,
            status=TaskStatus.RETRYING,
            run_after=now + timedelta(seconds=delay),
            retry_count=Task.retry_count + 1,
            error_code=code,
            error_message=f"{message}; retrying in {delay:.0f} s",
            lease_owner=None,
            lease_expires_at=None,
        )
        log.info("task will retry", extra={"task_pk": pk, "code": code, "delay": round(delay, 2)})

    async def finish(
        self, pk: int, status: TaskStatus, *, code: str | None, message: str | None
    ) -> None:
        await self._update_owned(
            pk,
            status=status,
            progress=100 if status == TaskStatus.COMPLETED else Task.progress,
            error_code=code,
            error_message=message,
            completed_at=utcnow(),
            lease_owner=None,
            lease_expires_at=None,
        )
        log.info("task finished", extra={"task_pk": pk, "status": str(status), "code": code})

    async def release(self, pk: int) -> None:
        with contextlib.suppress(Exception):
            await self._update_owned(
                pk,
                status=TaskStatus.PENDING,
                lease_owner=None,
                lease_expires_at=None,
                run_after=utcnow(),
            )

    async def _update_owned(self, pk: int, **values: Any) -> None:
        change = (
            update(Task)
            .where(Task.id == pk, Task.lease_owner == self.owner)
            .values(updated_at=utcnow(), **values)
            .execution_options(synchronize_session=False)
        )
        result = await self.writer.execute(change)
        if result.rowcount:  # type: ignore[attr-defined]
            await self.writer.publish(pk, "task.updated")
