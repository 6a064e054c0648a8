"""The paid calls: one `upstream_calls` row per slot (one per image, or one for a group),
committed `calling` before the call and `received` as soon as the answer arrives, so a
process that dies after paying is followed by one that stores what was paid for instead of
paying again; and the upstream budget (UPSTREAM_IMAGES_PER_MINUTE) every worker shares.

A slot found still `calling` means its process died mid-call: the outcome is unknown, which
is recorded (`lost_calls`) before the call is made again — except a streamed group, whose
images are saved as they arrive and kept, and an asynchronous job, which is polled again.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import logging
import time
from collections.abc import AsyncIterator, Sequence
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from volcimage.catalog.models import ModelInfo
from volcimage.core.config import Settings
from volcimage.core.db import utcnow
from volcimage.core.errors import UpstreamError
from volcimage.core.metrics import UPSTREAM_CALLS, UPSTREAM_SECONDS
from volcimage.providers.base import (
    ImageRequest,
    JobProvider,
    Provider,
    StreamProvider,
    UpstreamImage,
    UpstreamResult,
)
from volcimage.queue.lease import LeaseLost, SlotOutcome, TaskSnapshot
from volcimage.queue.limits import call_timeout
from volcimage.queue.storing import ImageWriter
from volcimage.queue.writes import Writer
from volcimage.storage.files import Store
from volcimage.tasks.models import CallState, UpstreamCall
from volcimage.tasks.params import TaskParams
from volcimage.tasks.seeds import slot_seed
from volcimage.tasks.service import reference_file

log = logging.getLogger("volcimage.runner")

UPSTREAM_BUDGET_LOCK = 0x766F6C63  # pg advisory lock key of the shared upstream budget
STREAM_CUT_OFF = "the stream was cut off"


def reopen(call: UpstreamCall, task_id: str) -> bool:
    """Readies a slot's existing row for this attempt. True: the paid call must be made (again),
    budget permitting; False: go on with what the row holds (an answer, a job to poll)."""
    if call.state in (CallState.RECEIVED, CallState.STORED):
        return False
    if call.state == CallState.CALLING and (call.response or {}).get("partial"):
        # A streamed group was cut off: keep what arrived, never pay again.
        call.state = CallState.RECEIVED
        call.response = {**(call.response or {}), "cut_off": STREAM_CUT_OFF}
        log.warning(
            "stream was interrupted; keeping the images it delivered",
            extra={"task_id": task_id, "slot": call.slot},
        )
        return False
    if call.state == CallState.CALLING and call.upstream_task_id:
        log.info(
            "resuming the upstream job",
            extra={"task_id": task_id, "slot": call.slot, "job": call.upstream_task_id},
        )
        return False
    if call.state == CallState.CALLING:
        # Its process died during the call: it may have been billed. Record, retry.
        call.lost_calls += 1
        log.warning(
            "call outcome unknown; calling again", extra={"task_id": task_id, "slot": call.slot}
        )
    else:
        call.state = CallState.CALLING
        call.error_code = None
    return True


def image_request(
    params: TaskParams, model: ModelInfo, slot: int, references: tuple[str, ...], timeout: float
) -> ImageRequest:
    """The provider's request for one slot of a task: where the parameters meet a provider
    (the model's upstream id and fixed parameters, the slot's own seed, the reference images
    as data URLs, the call's time)."""
    return ImageRequest(
        upstream_model=model.upstream_id,
        prompt=params.prompt,
        width=params.width,
        height=params.height,
        seed=slot_seed(params.seed, slot),
        scale=_scale(params.scale, model),
        steps=params.steps,
        negative_prompt=params.negative_prompt,
        watermark=params.watermark,
        upstream_params=model.upstream_params,
        reference_images=references,
        group_size=params.num_images if params.group else 0,
        sized=model.size_rule.mode != "adaptive",
        output_format=params.output_format,
        optimize_prompt=params.optimize_prompt,
        web_search=params.web_search,
        use_pre_llm=params.use_pre_llm,
        background=params.background,
        outpaint=params.outpaint.model_dump() if params.outpaint else None,
        upscale=params.upscale,
        layer_decomposition=params.layer_decomposition,
        timeout=timeout,
    )


def _scale(scale: float | None, model: ModelInfo) -> float | None:
    """A whole-number scale (Jimeng 4.6's) goes as an integer: the column keeps a float."""
    whole = scale is not None and model.scale is not None and model.scale.integer
    return int(scale) if whole and scale is not None else scale


def budget_wait(called_at: Sequence[datetime], limit: int, since: datetime) -> float:
    """Seconds until one more call fits `limit` calls a minute, given the calls made since
    `since` (a minute ago), oldest first; 0: go now."""
    if len(called_at) < limit:
        return 0.0
    oldest = called_at[len(called_at) - limit]
    return max(0.05, (oldest - since).total_seconds())


class Calls:
    def __init__(
        self,
        settings: Settings,
        writer: Writer,
        providers: dict[str, Provider],
        store: Store,
        images: ImageWriter,
    ) -> None:
        self.settings = settings
        self.writer = writer
        self.providers = providers
        self.store = store
        self.images = images
        self._is_postgres = not settings.is_sqlite

    async def run_slot(self, task: TaskSnapshot, model: ModelInfo, slot: int) -> SlotOutcome:
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
            await self.images.store_image(task, provider, slot, index, image)
            stored += 1
        await self._update_call(call.id, state=CallState.STORED)
        self.images.unstage(task, slot, len(images))
        return SlotOutcome(stored=stored, refused=refused, cut_off=response.get("cut_off"))

    async def _begin_call(self, task: TaskSnapshot, model: ModelInfo, slot: int) -> UpstreamCall:
        """Returns the slot's call row; `calling` means the paid call must be made now."""
        while True:
            try:
                call, wait = await self.writer.write(
                    functools.partial(self._take_slot, task, model, slot)
                )
            except IntegrityError:  # another runner has begun this slot: the task is its
                raise LeaseLost from None
            if call is not None:
                return call
            log.info("upstream budget spent; waiting", extra={"seconds": round(wait, 1)})
            await asyncio.sleep(wait)

    async def _take_slot(
        self, task: TaskSnapshot, model: ModelInfo, slot: int, session: AsyncSession
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
        elif not reopen(call, task.task_id):
            return call, 0.0
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
        recent = await session.scalars(
            select(UpstreamCall.called_at)
            .where(UpstreamCall.called_at >= since)
            .order_by(UpstreamCall.called_at)
        )
        # every row counted has a called_at: it is at or after `since`
        return budget_wait(cast(list[datetime], recent.all()), limit, since)

    async def _call_upstream(
        self, task: TaskSnapshot, model: ModelInfo, provider: Provider, call: UpstreamCall
    ) -> None:
        started = time.monotonic()
        timeout = call_timeout(
            self.settings, model, task.params.num_images if task.params.group else 1
        )
        try:
            references = await self._references(task)
            request = image_request(task.params, model, call.slot, references, timeout)
            if task.params.group:  # keeps its own time: what came before it ran out is kept
                result = await self._stream_group(task, provider, request, call, timeout)
            else:
                async with asyncio.timeout(timeout):
                    if model.asynchronous:
                        result = await self._submit_and_poll(provider, request, call)
                    else:
                        result = await provider.generate(request)
        except (UpstreamError, TimeoutError) as exc:
            error = exc if isinstance(exc, UpstreamError) else timed_out(timeout)
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
            await self.images.stage(task, call.slot, index, image)
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

    async def _stream_group(
        self,
        task: TaskSnapshot,
        provider: Provider,
        request: ImageRequest,
        call: UpstreamCall,
        seconds: float,
    ) -> UpstreamResult:
        """A streamed group: each image is saved in the call's answer and stored as it comes,
        so the page shows it at once and a crash mid-stream keeps what was paid for. So does a
        stream that fails once images came: asking again would buy the whole group again."""
        images: list[dict[str, Any]] = []
        failed: list[UpstreamError] = []
        stream = _until_failure(cast(StreamProvider, provider).stream(request), failed)
        try:
            async with asyncio.timeout(seconds):
                async for image in stream:
                    images.append(await self.images.stage(task, call.slot, len(images), image))
                    await self._update_call(call.id, response={"images": images, "partial": True})
                    if not image.error_code:
                        stored = UpstreamImage(**images[-1])
                        await self.images.store_image(
                            task, provider, call.slot, len(images) - 1, stored
                        )
        except TimeoutError:
            failed.append(timed_out(seconds))
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

    async def _references(self, task: TaskSnapshot) -> tuple[str, ...]:
        """The task's reference images as data URLs; final failure if one is gone."""
        urls = []
        for ref in task.references:
            async with self.writer.sessionmaker() as session:
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

    async def _update_call(self, call_id: int, **values: Any) -> None:
        await self.writer.execute(
            update(UpstreamCall).where(UpstreamCall.id == call_id).values(**values)
        )


def timed_out(seconds: float) -> UpstreamError:
    return UpstreamError(
        f"No answer within the model's request timeout ({seconds:g} s)",
        upstream_code="Timeout",
        retryable=True,
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
