"""Events across processes on PostgreSQL: LISTEN/NOTIFY.

Every process publishes its events locally and NOTIFYs a short note (type and id, never the
task: payloads are capped at 8000 bytes). The others read the task back from the database and
publish it to their own subscribers, so a page connected to any API process sees what every
worker does, a new task wakes idle workers at once, a cancel reaches the worker running it, and
a sign-out makes the streams of that session in every process check it again.
A dropped connection (a database restart, a failover) is made again with backoff; notes sent
while it is down are lost, the tasks themselves are not: once back, it tells the pages of
every process that events were missed (its own notes did not go out, others' did not come
in), and they read the tasks again (and streams check their session again).
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from volcimage.events.bus import ACCESS_CHANGED, MISSED, Event, EventBus

log = logging.getLogger("volcimage.relay")
CHANNEL = "volcimage_events"
# Reads what a note names back into the event to deliver (None: it is gone): the reads are the
# tasks package's, which publishes on the bus, so it is handed in rather than imported
Loader = Callable[[AsyncSession, str, str, int | None], Awaitable[Event | None]]


async def announce_access_change(session: AsyncSession, user_id: int) -> None:
    """From a process without a bus (the CLI): every serving process re-checks the user's
    open streams once the session commits. SQLite has no channel; its streams re-check when
    idle (SESSION_RECHECK_SECONDS)."""
    if session.get_bind().dialect.name == "postgresql":
        note = json.dumps({"o": "cli", "t": ACCESS_CHANGED, "w": user_id})
        await session.execute(select(func.pg_notify(CHANNEL, note)))


class PgRelay:
    def __init__(
        self,
        dsn: str,
        bus: EventBus,
        sessionmaker: async_sessionmaker[AsyncSession],
        load: Loader,
    ) -> None:
        self.dsn = dsn
        self.load = load
        self.bus = bus
        self.sessionmaker = sessionmaker
        self.origin = uuid.uuid4().hex[:12]
        self._conn: asyncpg.Connection | None = None
        self._pending: set[asyncio.Task[None]] = set()
        self._send_lock = asyncio.Lock()  # one operation at a time on an asyncpg connection
        self._stopping = False

    async def start(self) -> None:
        await self._connect()
        self.bus.relay = self

    async def _connect(self) -> None:
        conn = await asyncpg.connect(self.dsn)
        await conn.add_listener(CHANNEL, self._on_notify)
        conn.add_termination_listener(self._on_lost)
        self._conn = conn

    def _on_lost(self, _conn: Any) -> None:
        self._conn = None
        if not self._stopping:
            log.warning("event relay lost its database connection; reconnecting")
            self._spawn(self._reconnect())

    async def _reconnect(self) -> None:
        delay = 0.2
        while not self._stopping:
            try:
                await self._connect()
            except (OSError, asyncpg.PostgresError) as exc:
                log.warning("event relay cannot reconnect yet: %s", exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
            else:
                log.info("event relay reconnected")
                # this process's pages, and every other's: notes went missing both ways
                self.bus.publish(MISSED)
                return

    async def stop(self) -> None:
        self._stopping = True
        self.bus.relay = None
        if self._pending:
            await asyncio.gather(*self._pending, return_exceptions=True)
        if self._conn is not None:
            await self._conn.close()

    def send(self, event: Event) -> None:
        note = {"o": self.origin, "t": event["type"], "w": event.get("owner")}
        if "task" in event:
            note["id"] = event["task"]["task_id"]
        elif "image" in event:
            note["id"] = event["image"]["image_id"]
        elif "task_pk" in event:
            note["pk"] = event["task_pk"]
        self._spawn(self._notify(json.dumps(note)))

    async def _notify(self, payload: str) -> None:
        async with self._send_lock:
            if self._conn is not None and not self._conn.is_closed():
                await self._conn.execute("SELECT pg_notify($1, $2)", CHANNEL, payload)

    def _on_notify(self, _conn: Any, _pid: int, _channel: str, payload: str) -> None:
        note = json.loads(payload)
        if note.get("o") != self.origin:
            self._spawn(self._deliver(note))

    async def _deliver(self, note: dict[str, Any]) -> None:
        kind = note["t"]
        if kind == MISSED["type"]:
            self.bus.deliver(MISSED)
            return
        if kind == "task.cancel_requested":
            self.bus.deliver({"type": kind, "task_pk": note["pk"]})
            return
        if kind == ACCESS_CHANGED:  # a sign-out or a change of role reaches every process
            self.bus.deliver({"type": kind, "owner": note.get("w")})
            return
        if not self.bus.watched and kind != "task.created":
            return  # no page here to show it: loading the task would be for nothing
        owner = note.get("w")
        if kind == "task.deleted":
            self.bus.deliver({"type": kind, "owner": owner, "task": {"task_id": note["id"]}})
            return
        async with self.sessionmaker() as session:
            event = await self.load(session, kind, note["id"], owner)
        if event is not None:
            self.bus.deliver(event)

    def _spawn(self, work: Any) -> None:
        job = asyncio.get_running_loop().create_task(work)
        self._pending.add(job)
        job.add_done_callback(self._done)

    def _done(self, job: asyncio.Task[None]) -> None:
        self._pending.discard(job)
        if not job.cancelled() and job.exception() is not None:
            log.warning("event relay failed: %s", job.exception())


async def start_relay(
    database_url: str,
    bus: EventBus,
    sessionmaker: async_sessionmaker[AsyncSession],
    load: Loader,
) -> PgRelay | None:
    """A running relay on PostgreSQL; None on SQLite (one host, one process per database)."""
    if not database_url.startswith("postgresql+asyncpg://"):
        return None
    relay = PgRelay(
        database_url.replace("postgresql+asyncpg://", "postgresql://", 1), bus, sessionmaker, load
    )
    await relay.start()
    return relay
