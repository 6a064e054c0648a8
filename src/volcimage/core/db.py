"""Engine and session factory; SQLite gets WAL, a busy timeout and foreign keys."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

import anyio
import anyio.to_thread
from sqlalchemy import DateTime, MetaData, TypeDecorator, event
from sqlalchemy import create_engine as create_sync_engine
from sqlalchemy.engine import Connection, Dialect, Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import DeclarativeBase, Session
from sqlalchemy.util import await_

from volcimage.core.config import Settings, sqlite_path

T = TypeVar("T")

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class UTCDateTime(TypeDecorator[datetime]):
    """Stores UTC; returns aware datetimes on every backend (SQLite drops tzinfo)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)


def _sqlite_pragmas(busy_timeout_ms: int, dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # first: every later statement, the journal mode's included, may wait on a lock
    cursor.execute(f"PRAGMA busy_timeout={busy_timeout_ms}")
    cursor.execute("PRAGMA journal_mode=WAL")  # the migrations set it; a no-op then
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def create_engine(settings: Settings) -> AsyncEngine:
    kwargs: dict[str, Any] = {"echo": settings.SHOW_SQL}
    if not settings.is_sqlite:
        # pre-ping: a write may not be retried blindly, so a connection a restart or failover
        # dropped is replaced before it is used
        kwargs.update(pool_size=10, max_overflow=10, pool_pre_ping=True)
    engine = create_async_engine(settings.DATABASE_URL, **kwargs)
    if settings.is_sqlite:
        timeout = settings.SQLITE_BUSY_TIMEOUT_MS
        event.listen(engine.sync_engine, "connect", functools.partial(_sqlite_pragmas, timeout))
        if sqlite_path(settings.DATABASE_URL) is not None:  # in memory: one shared connection
            WriterQueue(timeout / 1000).attach(engine.sync_engine)
    return engine


class WriteLockTimeout(TimeoutError):
    """A write waited longer than the busy timeout for the process's other writes."""


class WriterQueue:
    """SQLite takes one writer at a time. Left to itself, each waiting writer polls the lock
    in its own thread with sleeps of up to 100 ms: under load a write waited seconds while the
    lock stood free between polls, and past the busy timeout a paid task failed ("database is
    locked"). So the writers of a process queue here, first come first served, from their
    first INSERT, UPDATE, DELETE or BEGIN IMMEDIATE to the end of their transaction; the busy
    handler is left to order this process against other processes on the same file.

    A connection lets go of its turn however it leaves its user: checked in, or detached (a
    session dropped without being closed, found by the garbage collector). A turn kept by a
    connection that is gone would stop every later write of the process for good."""

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self._lock: asyncio.Lock | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        # what holds the turn (its task, its first write), named by a write that waited too long
        self._holder: tuple[asyncio.Task[Any] | None, str] = (None, "")

    def attach(self, engine: Engine) -> None:
        event.listen(engine, "before_cursor_execute", self._before_execute)
        event.listen(engine.pool, "checkin", self._let_go)
        event.listen(engine.pool, "detach", self._let_go)

    def _before_execute(self, conn: Connection, _cursor: Any, statement: str, *_args: Any) -> None:
        if _WRITING in conn.info or not _is_write(statement):
            return
        if self._lock is None:
            self._lock, self._loop = asyncio.Lock(), asyncio.get_running_loop()
        await_(self._acquire(self._lock))
        conn.info[_WRITING] = self._lock
        self._holder = (asyncio.current_task(), statement)

    async def _acquire(self, lock: asyncio.Lock) -> None:
        try:
            async with asyncio.timeout(self.timeout):
                await lock.acquire()
        except TimeoutError:
            task, statement = self._holder
            holder = f"{task.get_name() if task else '?'}: {' '.join(statement.split())[:60]}"
            raise WriteLockTimeout(
                f"waited {self.timeout:g} s for this process's other database writes"
                f" (held by {holder})"
            ) from None

    def _let_go(self, _dbapi_connection: Any, record: Any) -> None:
        # after its transaction ended (commit, rollback or reset), or once it is cut loose
        lock = record.info.pop(_WRITING, None)
        if lock is None or self._loop is None or self._loop.is_closed():
            return
        try:
            here = asyncio.get_running_loop() is self._loop
        except RuntimeError:
            here = False
        if here:
            lock.release()
        else:  # the garbage collector may run in any thread
            self._loop.call_soon_threadsafe(lock.release)


_WRITING = "volcimage_writing"


def _is_write(statement: str) -> bool:
    # BEGIN IMMEDIATE: a transaction that takes the write lock at once (quota.reserve)
    return statement.lstrip()[:6].upper() in ("INSERT", "UPDATE", "DELETE", "BEGIN ")


def create_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


class Reads:
    """Runs a read-only function of a plain Session in one go, on the cheapest path.

    SQLite: aiosqlite hops to its thread and back for every cursor call (~0.1 ms of CPU each,
    twenty times a small query), so a read runs whole on the synchronous driver: in a worker
    thread, one hop a request, or with `indexed=True` (a task by id, a page of the newest and
    its count: index walks, a millisecond at 100k tasks) on the event loop's own thread, as the
    hop and the GIL contention it brings cost more than such a read (docs/benchmarks.md). A
    read that may scan (search, filters) keeps the thread, so the loop stays free.

    PostgreSQL: reads have their own pool in autocommit, as a session on the shared engine
    wrapped each read in BEGIN and ROLLBACK and its pre-ping in three more round trips. It
    opens no connections beyond its ten: under a load of reads, burst connections opened and
    closed a dozen times a second, each a new server process. Nor does it ping a connection
    before each read (a third of a small read's cost): a read is safe to repeat, so one that
    finds its connection dropped by a restart or failover runs once more on a fresh one.
    Writes stay on the shared engine, the one place that orders them.
    """

    def __init__(self, settings: Settings, engine: AsyncEngine) -> None:
        self._sync: Engine | None = None
        self._own: AsyncEngine | None = None
        if not settings.is_sqlite:
            self._own = create_async_engine(
                engine.url,
                echo=settings.SHOW_SQL,
                isolation_level="AUTOCOMMIT",
                pool_size=10,
                max_overflow=0,
            )
        elif sqlite_path(settings.DATABASE_URL) is not None:
            self._sync = create_sync_engine(
                engine.url.set(drivername="sqlite+pysqlite"),
                echo=settings.SHOW_SQL,
                connect_args={"check_same_thread": False},  # pooled: one thread at a time
            )
            pragmas = functools.partial(_sqlite_pragmas, settings.SQLITE_BUSY_TIMEOUT_MS)
            event.listen(self._sync, "connect", pragmas)
        # an in-memory database exists once, on the shared engine's connection
        self._async = create_sessionmaker(self._own or engine)
        self._threads = anyio.CapacityLimiter(2)

    async def __call__(self, read: Callable[..., T], *args: Any, indexed: bool = False) -> T:
        if self._sync is None:
            try:
                return await self._read_async(read, args)
            except DBAPIError as error:
                if not error.connection_invalidated:
                    raise
                # the pool has let go of this connection and every one as old
                return await self._read_async(read, args)
        if indexed:
            return _read_sync(self._sync, read, args)
        return await anyio.to_thread.run_sync(
            _read_sync, self._sync, read, args, limiter=self._threads
        )

    async def _read_async(self, read: Callable[..., T], args: tuple[Any, ...]) -> T:
        async with self._async() as session:
            return await session.run_sync(read, *args)

    async def dispose(self) -> None:
        if self._sync is not None:
            self._sync.dispose()
        if self._own is not None:
            await self._own.dispose()


def _read_sync(engine: Engine, read: Callable[..., T], args: tuple[Any, ...]) -> T:
    with Session(engine) as session:
        return read(session, *args)
