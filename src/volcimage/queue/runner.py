"""The runner: claims tasks from the `tasks` table with a lease and carries them out, up to
MAX_CONCURRENT_TASKS at once. The parts: `lease` (claim, heartbeat and cancel, retry, finish,
hand back), `calls` (the paid calls and the upstream budget), `storing` (from a paid answer
to files, rows, progress and events), `writes` (writes held through a database outage).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import socket
import uuid
from collections.abc import Awaitable, Callable

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from volcimage.catalog.models import Catalog
from volcimage.core.config import Settings
from volcimage.core.db import Reads
from volcimage.events.bus import EventBus
from volcimage.providers.base import Provider
from volcimage.queue.calls import Calls
from volcimage.queue.lease import Lease, SlotOutcome, settle
from volcimage.queue.limits import Limits
from volcimage.queue.storing import ImageWriter
from volcimage.queue.writes import Writer
from volcimage.storage.files import Store

log = logging.getLogger("volcimage.runner")


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
        on_disk_full: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self.settings = settings
        self.providers = providers
        self.catalog = catalog
        self.store = store
        self.bus = bus
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        writer = Writer(sessionmaker, reads, bus)
        self.limits = Limits(settings, catalog)
        self.lease = Lease(settings, writer, self.owner, self.limits)
        images = ImageWriter(settings, writer, store, on_disk_full)
        self.calls = Calls(settings, writer, providers, store, images)
        self._running: dict[int, asyncio.Task[None]] = {}
        bus.cancel_listeners.append(self.lease.cancel_local)
        self._wake = asyncio.Event()

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
        claimed = await self.lease.claim(free, self._running)
        for pk in claimed:
            held = self.lease.hold(pk, functools.partial(self._execute, pk))
            job = asyncio.create_task(held, name=f"task-{pk}")
            self._running[pk] = job
            job.add_done_callback(functools.partial(self._finished, pk))
        return len(claimed)

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

    async def _execute(self, pk: int) -> None:
        task = await self.lease.begin(pk)
        if task is None:
            return
        model = self.catalog.get(task.params.model)
        log.info("task started", extra={"task_id": task.task_id, "attempt": task.attempts})
        # no more calls at once than the upstream allows (the claim counted as many)
        at_once = asyncio.Semaphore(self.limits.calls_at_once(model.id, task.slots))

        async def slot_call(slot: int) -> SlotOutcome:
            async with at_once:
                return await self.calls.run_slot(task, model, slot)

        results = await asyncio.gather(
            *(slot_call(slot) for slot in range(task.slots)), return_exceptions=True
        )
        end = settle(
            results,
            # a layer decomposition makes as many layers as the upstream finds: one is enough
            asked=1 if task.params.layer_decomposition else task.params.num_images,
            retry_count=task.retry_count,
            max_retries=self.settings.MAX_RETRY_COUNT,
            retried_for=task.retried_for,
        )
        await self.lease.conclude(pk, end, task.retry_count, model.id)
