"""When retention runs by itself (AUTO_CLEANUP): at start, then hourly, and when a write finds
the disk full. On PostgreSQL one process at a time runs it, by advisory lock; a process that
finds it taken leaves the run to the holder."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from volcimage.core.config import Settings
from volcimage.retention.cleanup import Outcome, clean, limits_of
from volcimage.storage.files import Store

log = logging.getLogger("volcimage.retention")
CLEANUP_LOCK = 0x766F6C66  # pg advisory lock key: one cleanup at a time across workers
EVERY_SECONDS = 3600.0


class Retention:
    def __init__(
        self, settings: Settings, sessionmaker: async_sessionmaker[AsyncSession], store: Store
    ) -> None:
        self.settings = settings
        self.sessionmaker = sessionmaker
        self.store = store
        self._running = asyncio.Lock()

    async def run(self, trigger: str, *, dry_run: bool = False) -> Outcome | None:
        """One run; None: another process is running one (PostgreSQL)."""
        async with self._running:
            if self.settings.is_sqlite:
                return await self._clean(trigger, dry_run)
            async with self.sessionmaker() as guard:  # its transaction holds the lock
                taken = await guard.scalar(select(func.pg_try_advisory_xact_lock(CLEANUP_LOCK)))
                if not taken:
                    log.info("cleanup under way in another process", extra={"trigger": trigger})
                    return None
                return await self._clean(trigger, dry_run)

    async def _clean(self, trigger: str, dry_run: bool) -> Outcome:
        limits = limits_of(self.settings)
        return await clean(self.sessionmaker, self.store, limits, trigger=trigger, dry_run=dry_run)

    async def on_disk_full(self) -> None:
        """A write found no space: clean up now (AUTO_CLEANUP), so the task's retry finds
        room. Runs under way are joined, not repeated."""
        if not self.settings.AUTO_CLEANUP:
            return
        if self._running.locked():
            async with self._running:
                return
        try:
            await self.run("disk_full")
        except Exception:  # the task is retried either way
            log.exception("cleanup after a full disk failed")

    async def every_hour(self, stop: asyncio.Event) -> None:
        if not self.settings.AUTO_CLEANUP:
            return
        trigger = "start"
        while not stop.is_set():
            try:
                await self.run(trigger)
            except Exception:  # e.g. the database is away: next hour, then
                log.exception("cleanup failed")
            trigger = "hourly"
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), EVERY_SECONDS)
