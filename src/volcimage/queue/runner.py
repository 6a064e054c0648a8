"""The runner: claims tasks from the `tasks` table with a lease and carries them out.

One task = `num_images` upstream calls ("slots"), or one call for a Seedream 4.x group. Each
slot is an `upstream_calls` row that is committed before the paid call (`calling`) and as soon
as the answer arrives (`received`), so a process that dies after paying is replaced by one that
downloads what was paid for instead of paying again. A slot found still `calling` means its
process died mid-call: the outcome is unknown, which is recorded (`lost_calls`) before the call
is made again — except a streamed group, whose images are saved as they arrive and kept.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import functools
import logging
import os
import random
import socket
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar, cast

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.engine import Result
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.sql import Executable
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, wait_exponential_jitter

from volcimage.catalog.models import Catalog, ModelInfo
from volcimage.core.config import Settings
from volcimage.core.db import Reads, utcnow
from volcimage.core.errors import UpstreamError
from volcimage.core.metrics import IMAGES_STORED, UPSTREAM_CALLS, UPSTREAM_SECONDS
from volcimage.core.outages import is_outage
from volcimage.events.bus import EventBus
from volcimage.images.decoding import decode
from volcimage.images.processing import SUFFIX, prepare
from volcimage.providers.base import (
    RETRY_AFTER_CAP,
    ImageRequest,
    JobProvider,
    Provider,
    StreamProvider,
    UpstreamImage,
    UpstreamResult,
)
from volcimage.storage.files import Store, write_atomic
from volcimage.tasks import reads as reads
from volcimage.tasks.models import CallState, Image, Task, TaskStatus, UpstreamCall
from volcimage.tasks.seeds import SLOT_STRIDE, image_seed, slot_seed
from volcimage.tasks.service import get_task_by_pk, reference_file

log = logging.getLogger("volcimage.runner")

# A task whose process keeps dying is given up after this many extra claims.
CRASH_ALLOWANCE = 3
UPSTREAM_BUDGET_LOCK = 0x766F6C63  # pg advisory lock key of the shared upstream budget
CLAIM_LOCK = 0x766F6C64  # pg advisory lock key of claiming (the global concurrency cap)
IMAGE_ID_NAMESPACE = uuid.UUID("5b0c6f1e-6a43-4a53-9c3e-766f6c63696d")
WRITE_RETRY_MAX_SECONDS = 2.0  # a held write is tried again at least this often
T = TypeVar("T")
STREAM_CUT_OFF = "the stream was cut off"
GROUP_SHORT = "the upstream ended the group with fewer images than asked for"


class LeaseLost(Exception):
    """Another runner owns the task now (our lease expired); stop without writing."""


@dataclass
class SlotOutcome:
    stored: int
    refused: list[UpstreamImage]
    cut_off: str | None = None  # why a group's stream ended early


def backoff_seconds(settings: Settings, retry_count: int, retry_after: float | None) -> float:
    """Exponential backoff with full jitter, never sooner than the upstream's Retry-After up
    to RETRY_AFTER_CAP (a day's Retry-After would hold the task a day)."""
    ceiling = min(settings.RETRY_MAX_DELAY, settings.RETRY_BASE_DELAY * 2**retry_count)
    delay = random.uniform(ceiling / 2, ceiling)
    return max(delay, min(retry_after or 0.0, RETRY_AFTER_CAP))


class Runner:
    def __init__(
        self,
        settings: Settings,
        sessionmaker: async_sessionmaker[AsyncSession],
        reads: Reads,
        providers: dict[str, Provider],
        catalog: Catalog,
        store: Store,
        bus: EventBus,
        owner: str | None = None,
    ) -> None:
        self.settings = settings
        self.sessionmaker = sessionmaker
        self.reads = reads
        self.providers = providers
        self.catalog = catalog
        self.store = store
        self.bus = bus
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.staging_dir = settings.DATA_DIR / "staging"
        self._running: dict[int, asyncio.Task[None]] = {}
        self._work: dict[int, tuple[asyncio.Task[None], list[str]]] = {}
        bus.cancel_listeners.append(self._cancel_local)
        self._wake = asyncio.Event()
        self._is_postgres = not settings.is_sqlite

    # ---- the loop ------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        log.info("runner started", extra={"owner": self.owner})
        removed = await asyncio.to_thread(self.store.remove_abandoned_temp_files)
        if removed:
            log.info("removed temp files of dead processes", extra={"count": removed})
        try:
            while not stop.is_set():
                try:
                    await self.tick()
                except Exception:
                    log.exception("runner tick failed; retrying")
                await self._sleep(stop)
        finally:
            await self.shutdown()
            log.info("runner stopped", extra={"owner": self.owner})

    async def tick(self) -> int:
        """Claim as many tasks as there are free slots and start them. Returns how many."""
        free = self.settings.MAX_CONCURRENT_TASKS - len(self._running)
        if free <= 0:
            return 0
        claimed = await self.claim(free)
        for pk in claimed:
            job = asyncio.create_task(self._guarded(pk), name=f"task-{pk}")
            self._running[pk] = job
            job.add_done_callback(functools.partial(self._finished, pk))
        return len(claimed)

    async def drain(self) -> None:
        """Run until no task is claimable or running (for tests and `generate`)."""
        while True:
            started = await self.tick()
            if not self._running and not started:
                return
            if self._running:
                await asyncio.wait(list(self._running.values()), return_when="FIRST_COMPLETED")

    async def shutdown(self) -> None:
        jobs = list(self._running.values())
        for job in jobs:
            job.cancel()
        await asyncio.gather(*jobs, return_exceptions=True)

    def _finished(self, pk: int, _job: asyncio.Task[None]) -> None:
        self._running.pop(pk, None)
        self._wake.set()

    async def _sleep(self, stop: asyncio.Event) -> None:
        waiters = [
            asyncio.create_task(self.bus.task_created.wait()),
            asyncio.create_task(self._wake.wait()),
            asyncio.create_task(stop.wait()),
        ]
        await asyncio.wait(
            waiters, timeout=self.settings.TASK_POLL_INTERVAL, return_when="FIRST_COMPLETED"
        )
        for waiter in waiters:
            waiter.cancel()
        self.bus.task_created.clear()
        self._wake.clear()

    # ---- claiming ------------------------------------------------------------------------

    async def claim(self, limit: int) -> list[int]:
        now = utcnow()
        async with self.sessionmaker() as session:
            if self._is_postgres:  # count and claim as one step across workers
                await session.execute(select(func.pg_advisory_xact_lock(CLAIM_LOCK)))
            running = await session.scalar(
                select(func.count())
                .select_from(Task)
                .where(Task.status == TaskStatus.PROCESSING, Task.lease_expires_at >= now)
            )
            # MAX_CONCURRENT_TASKS holds for the whole deployment, every worker together
            limit = min(limit, self.settings.MAX_CONCURRENT_TASKS - (running or 0))
            pks = await self._claim_up_to(session, limit, now) if limit > 0 else []
            await session.commit()
        for pk in pks:
            await self._publish(pk, "task.updated")
        return pks

    async def _claim_up_to(self, session: AsyncSession, limit: int, now: datetime) -> list[int]:
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
                Task.id.not_in(list(self._running)),
            ),
        )
        candidates = select(Task.id).where(claimable).order_by(Task.run_after, Task.id).limit(limit)
        if self._is_postgres:
            # A CTE runs once: as `id IN (subquery … LIMIT n FOR UPDATE SKIP LOCKED)` PostgreSQL
            # may re-run the subquery and take more than n tasks (found by the cap test).
            chosen = candidates.with_for_update(skip_locked=True).cte("chosen")
            picked = Task.id == chosen.c.id
        else:
            picked = Task.id.in_(candidates.scalar_subquery())
        stmt = (
            update(Task)
            .where(picked, claimable)
            .values(
                status=TaskStatus.PROCESSING,
                lease_owner=self.owner,
                lease_expires_at=now + self._lease,
                attempts=Task.attempts + 1,
                started_at=func.coalesce(Task.started_at, now),
                updated_at=now,
            )
            .returning(Task.id)
            .execution_options(synchronize_session=False)
        )
        return list((await session.scalars(stmt)).all())

    @property
    def _lease(self) -> timedelta:
        return timedelta(seconds=self.settings.TASK_LEASE_SECONDS)

    # ---- one task ------------------------------------------------------------------------

    async def _guarded(self, pk: int) -> None:
        """Runs a task under a heartbeat that renews the lease and notices cancellation."""
        work = asyncio.create_task(self._execute(pk))
        stopped_because: list[str] = []
        self._work[pk] = (work, stopped_because)
        beat = asyncio.create_task(self._heartbeat(pk, work, stopped_because))
        try:
            await work
        except LeaseLost:
            log.warning("lease lost; another runner has the task", extra={"task_pk": pk})
        except asyncio.CancelledError:
            if stopped_because == ["cancel"]:
                await self._finish(pk, TaskStatus.CANCELLED, "cancelled", "Cancelled by the user")
            elif stopped_because == ["lost"]:
                log.warning("lease lost; another runner has the task", extra={"task_pk": pk})
            else:  # this runner is shutting down: hand the task back at once
                await self._release(pk)
                raise
        except Exception as exc:
            if is_outage(exc):  # the database, not the task: it goes back to the queue
                log.warning("database unavailable; task handed back", extra={"task_pk": pk})
                await self._release(pk)
            else:
                log.exception("task crashed", extra={"task_pk": pk})
                await self._finish(
                    pk, TaskStatus.FAILED, "InternalError", "Internal error; see server log"
                )
        finally:
            self._work.pop(pk, None)
            beat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await beat

    def _cancel_local(self, pk: int) -> None:
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
                .values(lease_expires_at=utcnow() + self._lease)
                .returning(Task.cancel_requested)
                .execution_options(synchronize_session=False)
            )
            row = (await self._execute_durably(renew)).first()
            if row is None or row[0]:
                reason.append("lost" if row is None else "cancel")
                work.cancel()
                return

    async def _execute(self, pk: int) -> None:
        async with self.sessionmaker() as session:
            task = await get_task_by_pk(session, pk)
            if task is None:
                return
            if task.cancel_requested:
                await self._finish(pk, TaskStatus.CANCELLED, "cancelled", "Cancelled by the user")
                return
            if task.attempts > self.settings.MAX_RETRY_COUNT + CRASH_ALLOWANCE + 1:
                await self._finish(
                    pk,
                    TaskStatus.FAILED,
                    "TooManyAttempts",
                    f"Gave up after {task.attempts - 1} attempts",
                )
                return
            model = self.catalog.get(task.model)
            snapshot = _TaskSnapshot.of(task)
        log.info("task started", extra={"task_id": snapshot.task_id, "attempt": snapshot.attempts})
        results = await asyncio.gather(
            *(self._run_slot(snapshot, model, slot) for slot in range(snapshot.slots)),
            return_exceptions=True,
        )
        await self._settle(pk, snapshot, results)

    async def _settle(self, pk: int, snapshot: _TaskSnapshot, results: list[Any]) -> None:
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
        retryable = [e for e in errors if isinstance(e, OSError) or getattr(e, "retryable", False)]
        if retryable and snapshot.retry_count < self.settings.MAX_RETRY_COUNT:
            first = retryable[0]
            retry_after = getattr(first, "retry_after", None)
            delay = backoff_seconds(self.settings, snapshot.retry_count, retry_after)
            await self._schedule_retry(pk, _error_code(first), _error_message(first), delay)
            return
        if errors:
            first = (retryable or errors)[0]
            code, message = _error_code(first), _error_message(first)
            if retryable:
                message = f"{message} (gave up after {snapshot.retry_count} retries)"
            if stored:
                await self._finish(
                    pk,
                    TaskStatus.COMPLETED,
                    code,
                    f"{stored} of {snapshot.num_images} images made; {message}",
                )
            else:
                await self._finish(pk, TaskStatus.FAILED, code, message)
            return
        status = TaskStatus.COMPLETED if stored else TaskStatus.FAILED
        if refused:
            code = refused[0].error_code or "ImageRefused"
            message = f"{len(refused)} image(s) refused by the upstream: {refused[0].error_message}"
            await self._finish(pk, status, code, message)
            return
        if stored < snapshot.num_images:  # a group the upstream ended early, or was cut off
            reason = next((o.cut_off for o in outcomes if o.cut_off), GROUP_SHORT)
            message = f"{stored} of {snapshot.num_images} images made: {reason}"
            await self._finish(pk, status, "partial" if stored else "NoImage", message)
            return
        await self._finish(pk, TaskStatus.COMPLETED, None, None)

    # ---- one slot (one paid call) --------------------------------------------------------

    async def _run_slot(self, task: _TaskSnapshot, model: ModelInfo, slot: int) -> SlotOutcome:
        provider = self.providers[model.provider]
        call = await self._begin_call(task, model, slot)
        if call.state == CallState.CALLING:
            await self._call_upstream(task, model, provider, call)
        response = call.response or {}
        images = [UpstreamImage(**item) for item in response.get("images", [])]
        refused = [img for img in images if img.error_code]
        stored = 0
        for index, image in enumerate(images):
            if image.error_code:
                continue
            await self._store_image(task, provider, slot, index, image)
            stored += 1
        await self._update_call(call.id, state=CallState.STORED)
        for index in range(len(images)):
            _staged_path(self.staging_dir, task.task_id, slot, index).unlink(missing_ok=True)
        return SlotOutcome(stored=stored, refused=refused, cut_off=response.get("cut_off"))

    async def _begin_call(self, task: _TaskSnapshot, model: ModelInfo, slot: int) -> UpstreamCall:
        """Returns the slot's call row; `calling` means the paid call must be made now."""
        while True:
            try:
                call, wait = await self._write(
                    functools.partial(self._take_slot, task, model, slot)
                )
            except IntegrityError:  # another runner has begun this slot: the task is its
                raise LeaseLost from None
            if call is not None:
                return call
            log.info("upstream budget spent; waiting", extra={"seconds": round(wait, 1)})
            await asyncio.sleep(wait)

    async def _take_slot(
        self, task: _TaskSnapshot, model: ModelInfo, slot: int, session: AsyncSession
    ) -> tuple[UpstreamCall | None, float]:
        """(the call, 0) to go on with, or (None, seconds to wait for the upstream budget)."""
        call = await session.scalar(
            select(UpstreamCall).where(UpstreamCall.task_pk == task.pk, UpstreamCall.slot == slot)
        )
        if call is None:
            call = UpstreamCall(
                task_pk=task.pk, slot=slot, provider=model.provider, state=CallState.CALLING
            )
            session.add(call)
        elif call.state in (CallState.RECEIVED, CallState.STORED):
            return call, 0.0
        elif call.state == CallState.CALLING and (call.response or {}).get("partial"):
            # A streamed group was cut off: keep what arrived, never pay again.
            call.state = CallState.RECEIVED
            call.response = {**(call.response or {}), "cut_off": STREAM_CUT_OFF}
            log.warning(
                "stream was interrupted; keeping the images it delivered",
                extra={"task_id": task.task_id, "slot": slot},
            )
            return call, 0.0
        elif call.state == CallState.CALLING and call.upstream_task_id:
            log.info(
                "resuming the upstream job",
                extra={"task_id": task.task_id, "slot": slot, "job": call.upstream_task_id},
            )
            return call, 0.0
        elif call.state == CallState.CALLING:
            # Its process died during the call: it may have been billed. Record, retry.
            call.lost_calls += 1
            log.warning(
                "call outcome unknown; calling again", extra={"task_id": task.task_id, "slot": slot}
            )
        else:
            call.state = CallState.CALLING
            call.error_code = None
        wait = await self._upstream_budget(session)
        if wait:
            await session.rollback()
            return None, wait
        call.called_at = utcnow()
        return call, 0.0

    async def _upstream_budget(self, session: AsyncSession) -> float:
        """Seconds to wait before one more paid call fits UPSTREAM_IMAGES_PER_MINUTE, counted
        over every worker's calls in the database (0: go now)."""
        limit = self.settings.UPSTREAM_IMAGES_PER_MINUTE
        if not limit:
            return 0.0
        if self._is_postgres:  # count and claim as one step across workers
            await session.execute(select(func.pg_advisory_xact_lock(UPSTREAM_BUDGET_LOCK)))
        since = utcnow() - timedelta(minutes=1)
        recent = (
            await session.scalars(
                select(UpstreamCall.called_at)
                .where(UpstreamCall.called_at >= since)
                .order_by(UpstreamCall.called_at)
            )
        ).all()
        if len(recent) < limit:
            return 0.0
        oldest = recent[len(recent) - limit]
        assert oldest is not None
        return max(0.05, (oldest - since).total_seconds())

    async def _call_upstream(
        self, task: _TaskSnapshot, model: ModelInfo, provider: Provider, call: UpstreamCall
    ) -> None:
        started = time.monotonic()
        try:
            request = ImageRequest(
                upstream_model=model.upstream_id,
                prompt=task.prompt,
                width=task.width,
                height=task.height,
                seed=slot_seed(task.seed, call.slot),
                scale=task.scale,
                steps=task.steps,
                negative_prompt=task.negative_prompt,
                watermark=bool(task.params.get("watermark", False)),
                upstream_params=model.upstream_params,
                reference_images=await self._references(task),
                group_size=task.num_images if task.group else 0,
            )
            if task.group:  # keeps its own time: what came before it ran out is kept
                result = await self._stream_group(task, provider, request, call)
            else:
                async with asyncio.timeout(self.settings.REQUEST_TIMEOUT):
                    if model.asynchronous:
                        result = await self._submit_and_poll(provider, request, call)
                    else:
                        result = await provider.generate(request)
        except (UpstreamError, TimeoutError) as exc:
            error = exc if isinstance(exc, UpstreamError) else self._timed_out()
            await self._update_call(
                call.id,
                state=CallState.FAILED,
                error_code=error.upstream_code,
                # a timed-out call may still have been carried out (and billed), unless it
                # is a job we hold the id of and can poll again
                lost_calls=UpstreamCall.lost_calls
                + (0 if isinstance(exc, UpstreamError) or call.upstream_task_id else 1),
                upstream_task_id=None if error.job_gone else call.upstream_task_id,
            )
            UPSTREAM_CALLS.labels(model.provider, model.id, error.upstream_code).inc()
            log.warning(
                "upstream call failed",
                extra={
                    "task_id": task.task_id,
                    "code": error.upstream_code,
                    "retryable": error.retryable,
                },
            )
            raise error from None
        UPSTREAM_CALLS.labels(model.provider, model.id, "ok").inc()
        UPSTREAM_SECONDS.labels(model.provider, model.id).observe(time.monotonic() - started)
        images = [
            await self._staged(task, call.slot, index, image)
            for index, image in enumerate(result.images)
        ]
        response = {"images": images, "usage": result.usage}
        if result.cut_off:
            response["cut_off"] = result.cut_off
        await self._update_call(
            call.id,
            state=CallState.RECEIVED,
            response=response,
            request_id=result.request_id,
            images_billed=sum(1 for i in result.images if not i.error_code),
        )
        call.state, call.response = CallState.RECEIVED, response
        log.info(
            "upstream answered",
            extra={"task_id": task.task_id, "slot": call.slot, "images": len(images)},
        )

    def _timed_out(self) -> UpstreamError:
        return UpstreamError(
            f"No answer within REQUEST_TIMEOUT ({self.settings.REQUEST_TIMEOUT:g} s)",
            upstream_code="Timeout",
            retryable=True,
        )

    async def _staged(
        self, task: _TaskSnapshot, slot: int, index: int, image: UpstreamImage
    ) -> dict[str, Any]:
        """The image as saved in the call's answer: inline bytes go to disk until stored, so
        the paid bytes stay out of the database."""
        if image.b64_json:
            path = _staged_path(self.staging_dir, task.task_id, slot, index)
            await asyncio.to_thread(_write_staged, path, image.b64_json)
            image = UpstreamImage(size=image.size, url=f"staged:{path.name}")
        return dict(image.__dict__)

    async def _stream_group(
        self, task: _TaskSnapshot, provider: Provider, request: ImageRequest, call: UpstreamCall
    ) -> UpstreamResult:
        """A streamed group: each image is saved in the call's answer and stored as it comes,
        so the page shows it at once and a crash mid-stream keeps what was paid for. So does a
        stream that fails once images came: asking again would buy the whole group again."""
        images: list[dict[str, Any]] = []
        failed: list[UpstreamError] = []
        stream = _until_failure(cast(StreamProvider, provider).stream(request), failed)
        try:
            async with asyncio.timeout(self.settings.REQUEST_TIMEOUT):
                async for image in stream:
                    images.append(await self._staged(task, call.slot, len(images), image))
                    await self._update_call(call.id, response={"images": images, "partial": True})
                    if not image.error_code:
                        stored = UpstreamImage(**images[-1])
                        await self._store_image(task, provider, call.slot, len(images) - 1, stored)
        except TimeoutError:
            failed.append(self._timed_out())
        kept = [UpstreamImage(**item) for item in images]
        if not failed:
            return UpstreamResult(images=kept)
        if all(image.error_code for image in kept):
            raise failed[0]
        log.warning(
            "stream failed; keeping the images it delivered",
            extra={"task_id": task.task_id, "code": failed[0].upstream_code},
        )
        return UpstreamResult(images=kept, cut_off=f"{STREAM_CUT_OFF} ({failed[0].message})")

    async def _references(self, task: _TaskSnapshot) -> tuple[str, ...]:
        """The task's reference images as data URLs; final failure if one is gone."""
        urls = []
        for ref in task.params.get("reference_images") or []:
            async with self.sessionmaker() as session:
                found = await reference_file(session, ref)
            if found is None or not await asyncio.to_thread(self.store.exists, *found[:2]):
                raise UpstreamError(
                    f"Reference image {ref['id']} no longer exists",
                    upstream_code="ReferenceGone",
                    retryable=False,
                )
            area, key, mime = found
            data = await asyncio.to_thread(self.store.read, area, key)
            urls.append(f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}")
        return tuple(urls)

    async def _submit_and_poll(
        self, provider: Provider, request: ImageRequest, call: UpstreamCall
    ) -> UpstreamResult:
        """Submits the job unless this call already holds one, committing its id before the
        first poll: a process that dies while the job waits in the upstream queue is followed
        by one that polls the same job instead of paying for another."""
        jobs = cast(JobProvider, provider)
        if not call.upstream_task_id:
            job_id = await jobs.submit(request)
            await self._update_call(call.id, upstream_task_id=job_id)
            call.upstream_task_id = job_id
        while True:
            result = await jobs.result(request, call.upstream_task_id)
            if result is not None:
                return result
            await asyncio.sleep(self.settings.TASK_POLL_INTERVAL)

    async def _store_image(
        self, task: _TaskSnapshot, provider: Provider, slot: int, index: int, image: UpstreamImage
    ) -> None:
        position = slot * SLOT_STRIDE + index
        async with self.sessionmaker() as session:
            exists = await session.scalar(
                select(Image.id).where(Image.task_pk == task.pk, Image.position == position)
            )
        if exists:
            return
        url = image.url or ""
        if url.startswith("staged:"):
            raw = await asyncio.to_thread(
                (self.staging_dir / url.removeprefix("staged:")).read_bytes
            )
        else:
            raw = await provider.fetch(url)
        # The same id on every attempt: the file's bytes (and so its hashed name) come out
        # the same, so a process killed after writing it leaves nothing behind.
        image_id = str(uuid.uuid5(IMAGE_ID_NAMESPACE, f"{task.task_id}:{position}"))
        parameters = {
            "task_id": task.task_id,
            "image_id": image_id,
            "position": position,
            "prompt": task.prompt,
            "negative_prompt": task.negative_prompt,
            "model": task.model,
            "width": task.width,
            "height": task.height,
            "seed": image_seed(task.seed, position),
            "scale": task.scale,
            "steps": task.steps,
        }
        prepared = await decode(
            prepare,
            raw,
            parameters,
            self.settings.THUMBNAIL_MAX_SIZE,
            self.settings.THUMBNAIL_QUALITY,
        )
        original_key = await asyncio.to_thread(
            self.store.save_original, prepared.data, prepared.digest, SUFFIX[prepared.mime_type]
        )
        thumbnail_key = await asyncio.to_thread(
            self.store.save_thumbnail, prepared.thumbnail, prepared.digest
        )
        row = Image(
            image_id=image_id,
            task_pk=task.pk,
            position=position,
            file_path=original_key,
            thumbnail_path=thumbnail_key,
            content_hash=prepared.digest,
            mime_type=prepared.mime_type,
            file_size=len(prepared.data),
            width=prepared.width,
            height=prepared.height,
        )
        try:
            await self._write(functools.partial(_add_image, row, task.num_images))
        except IntegrityError:
            # Lost a race for this position, or the task was deleted meanwhile. Names are
            # content hashes of bytes that embed this task's id: no one else's.
            await asyncio.to_thread(self.store.delete, original_key, thumbnail_key)
            return
        IMAGES_STORED.inc()
        await self._publish(task.pk, "image.stored")

    # ---- state changes -------------------------------------------------------------------

    async def _schedule_retry(self, pk: int, code: str, message: str, delay: float) -> None:
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

    async def _finish(
        self, pk: int, status: TaskStatus, code: str | None, message: str | None
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

    async def _release(self, pk: int) -> None:
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
        result = await self._execute_durably(change)
        if result.rowcount:  # type: ignore[attr-defined]
            await self._publish(pk, "task.updated")

    async def _update_call(self, call_id: int, **values: Any) -> None:
        await self._execute_durably(
            update(UpstreamCall).where(UpstreamCall.id == call_id).values(**values)
        )

    async def _execute_durably(self, statement: Executable) -> Result[Any]:
        return await self._write(lambda session: session.execute(statement))

    async def _write(self, write: Callable[[AsyncSession], Awaitable[T]]) -> T:
        """Runs `write` in a session of its own and commits it, again and again while the
        database refuses writes for a while (locked, read-only, unreachable): what the runner
        records was often paid for, and a task whose outcome is lost is run, and paid for,
        again. So the outcome is held here until the database takes it."""
        retrying = AsyncRetrying(
            retry=retry_if_exception(is_outage),
            wait=wait_exponential_jitter(multiplier=0.05, max=WRITE_RETRY_MAX_SECONDS, jitter=0.05),
            before_sleep=_log_held_write,
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                async with self.sessionmaker() as session:
                    result = await write(session)
                    await session.commit()
                    return result
        raise AssertionError("unreachable: tenacity returns or raises")

    async def _publish(self, pk: int, kind: str) -> None:
        shown = await self.reads(reads.by_pk, pk, indexed=True)
        if shown is not None:
            self.bus.publish(reads.event(kind, shown))


@dataclass(frozen=True)
class _TaskSnapshot:
    """The immutable inputs of a task, read once per attempt."""

    pk: int
    task_id: str
    prompt: str
    negative_prompt: str | None
    model: str
    width: int
    height: int
    num_images: int
    seed: int | None
    scale: float | None
    steps: int | None
    params: dict[str, Any]
    attempts: int
    retry_count: int

    @classmethod
    def of(cls, task: Task) -> _TaskSnapshot:
        return cls(
            task.id,
            task.task_id,
            task.prompt,
            task.negative_prompt,
            task.model,
            task.width,
            task.height,
            task.num_images,
            task.seed,
            task.scale,
            task.steps,
            dict(task.params or {}),
            task.attempts,
            task.retry_count,
        )

    @property
    def group(self) -> bool:
        return bool(self.params.get("group"))

    @property
    def slots(self) -> int:
        """Paid calls: one per image, or one for a whole group."""
        return 1 if self.group else self.num_images


async def _add_image(row: Image, asked: int, session: AsyncSession) -> None:
    session.add(row)
    stored = await session.scalar(
        select(func.count()).select_from(Image).where(Image.task_pk == row.task_pk)
    )
    await session.execute(
        update(Task)
        .where(Task.id == row.task_pk)
        .values(progress=10 + int(85 * (stored or 0) / asked))
    )


def _log_held_write(state: RetryCallState) -> None:
    error = state.outcome.exception() if state.outcome else None
    log.warning(
        "database refuses writes; holding the change and trying again",
        extra={"attempt": state.attempt_number, "error": type(error).__name__},
    )


async def _until_failure(
    images: AsyncIterator[UpstreamImage], failed: list[UpstreamError]
) -> AsyncIterator[UpstreamImage]:
    """The stream's images until it fails, its error put in `failed`."""
    try:
        async for image in images:
            yield image
    except UpstreamError as exc:
        failed.append(exc)


def _staged_path(staging_dir: Path, task_id: str, slot: int, index: int) -> Path:
    return staging_dir / f"{task_id}-{slot}-{index}.bin"


def _write_staged(path: Path, b64: str) -> None:
    write_atomic(path, base64.b64decode(b64))


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
