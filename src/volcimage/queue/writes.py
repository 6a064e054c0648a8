"""The runner's writes: each in a session of its own, committed, and held through a database
outage (what the runner records was often paid for); and the events they announce."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from sqlalchemy.engine import Result
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.sql import Executable
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, wait_exponential_jitter

from volcimage.core.db import Reads, WriteLockTimeout
from volcimage.core.outages import is_outage
from volcimage.events.bus import EventBus
from volcimage.tasks import reads as reads

log = logging.getLogger("volcimage.runner")

WRITE_RETRY_MAX_SECONDS = 2.0  # a held write is tried again at least this often
T = TypeVar("T")


class Writer:
    def __init__(
        self, sessionmaker: async_sessionmaker[AsyncSession], reads: Reads, bus: EventBus
    ) -> None:
        self.sessionmaker = sessionmaker
        self.reads = reads
        self.bus = bus

    async def write(self, write: Callable[[AsyncSession], Awaitable[T]]) -> T:
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

    async def execute(self, statement: Executable) -> Result[Any]:
        return await self.write(lambda session: session.execute(statement))

    async def publish(self, pk: int, kind: str) -> None:
        # The event carries the whole task as the API shows it (images, owner, estimate):
        # more than any one write holds, so it is read back.
        shown = await self.reads(reads.by_pk, pk, indexed=True)
        if shown is not None:
            self.bus.publish(reads.event(kind, shown))


def _log_held_write(state: RetryCallState) -> None:
    error = state.outcome.exception() if state.outcome else None
    extra: dict[str, Any] = {"attempt": state.attempt_number, "error": type(error).__name__}
    if isinstance(error, WriteLockTimeout):  # its words name the statement, never its values
        extra["detail"] = str(error)
    log.warning("database refuses writes; holding the change and trying again", extra=extra)
