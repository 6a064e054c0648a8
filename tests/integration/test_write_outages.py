"""A database that refuses writes for a while (PostgreSQL turned read-only as in a failover,
SQLite locked by another process past its busy timeout) while paid calls are answered: each
outcome is held and written once the database takes writes again, nothing is paid twice,
requests meanwhile are 503 and /health says what is wrong."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
from collections.abc import AsyncIterator, Callable
from typing import Any

import asyncpg
import pytest
from sqlalchemy import func, select

from tests.support import PG_ADMIN_DSN, drop_connections, wait_for_task
from volcimage.core.config import sqlite_path
from volcimage.tasks.models import UpstreamCall

API = "/api/v1"
HELD = "database refuses writes; holding the change and trying again"


async def until(condition: Callable[[], Any], what: str, seconds: float = 60) -> None:
    for _ in range(int(seconds / 0.05)):
        if await condition():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"not reached: {what}")


@contextlib.asynccontextmanager
async def writes_refused(database_url: str) -> AsyncIterator[None]:
    if database_url.startswith("sqlite"):
        path = sqlite_path(database_url)
        assert path is not None
        holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        # another process's write that does not end; taken off the event loop, where the app
        # in this process may be midway through a write it needs the loop to finish
        await asyncio.to_thread(holder.execute, "BEGIN EXCLUSIVE")
        try:
            yield
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        return
    name = database_url.rsplit("/", 1)[1]
    admin = await asyncpg.connect(PG_ADMIN_DSN)
    try:
        await admin.execute(f'ALTER DATABASE "{name}" SET default_transaction_read_only = on')
        await drop_connections(database_url)  # as a failover to a standby would
        yield
        await admin.execute(f'ALTER DATABASE "{name}" RESET default_transaction_read_only')
        await drop_connections(database_url)
    finally:
        await admin.close()


async def _calls(studio: Any, *conditions: Any) -> int:
    async with studio.state.sessionmaker() as session:
        found = await session.scalar(
            select(func.count()).select_from(UpstreamCall).where(*conditions)
        )
    return int(found or 0)


async def test_paid_outcomes_are_held_until_the_database_takes_writes(
    make_studio: Any, database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="volcimage.runner")
    async with make_studio(
        EMULATOR_LATENCY_MS=1500, MAX_CONCURRENT_TASKS=4, SQLITE_BUSY_TIMEOUT_MS=200
    ) as studio:
        ids = [(await studio.generate())["task_id"] for _ in range(4)]

        async def all_calling() -> bool:
            return await _calls(studio, UpstreamCall.state == "calling") == 4

        await until(all_calling, "four paid calls under way")
        async with writes_refused(database_url):

            async def answered_and_held() -> bool:
                held = sum(HELD in r.getMessage() for r in caplog.records)
                return studio.emulator.generation_calls == 4 and held >= 4

            await until(answered_and_held, "four answers received and held")
            health = await studio.client.get(f"{API}/health")
            assert health.status_code == 503
            assert health.json()["checks"]["database"].startswith("error")
            refused = await studio.client.post(
                f"{API}/generate", json={"prompt": "x", "model": "seedream-3.0"}
            )
            assert refused.status_code == 503, refused.text
            assert refused.json()["error"] == "service_unavailable"
            assert refused.headers["Retry-After"]
        for task_id in ids:
            task = await wait_for_task(studio.client, task_id, timeout=60)
            assert task["status"] == "completed", task
            assert len(task["images"]) == 1
        assert studio.emulator.generation_calls == 4  # one paid call per image, no more
        assert await _calls(studio, UpstreamCall.lost_calls > 0) == 0
        assert (await studio.client.get(f"{API}/health")).json()["status"] == "ok"


async def test_health_names_a_missing_database_file_and_a_full_disk(make_studio: Any) -> None:
    async with make_studio() as studio:
        assert (await studio.client.get(f"{API}/health")).status_code == 200
        studio.settings.MIN_FREE_DISK_MB = 2**40  # more than any disk has free
        full = await studio.client.get(f"{API}/health")
        assert full.status_code == 503
        assert full.json()["checks"]["storage"].startswith("error: disk full")
        if studio.settings.is_sqlite:
            path = sqlite_path(studio.settings.DATABASE_URL)
            assert path is not None
            for suffix in ("", "-wal", "-shm"):
                with contextlib.suppress(FileNotFoundError):
                    (path.parent / (path.name + suffix)).unlink()
            gone = (await studio.client.get(f"{API}/health")).json()
            assert gone["checks"]["database"] == "error: the database file is missing"


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # SQLite's own locking
async def test_reads_answer_while_another_process_holds_the_write_lock(
    make_studio: Any, database_url: str
) -> None:
    """WAL readers never wait on a writer: a new database is in WAL from its first migration
    (it was switched by whichever connection came first, and a read racing a write on a new
    database was refused as 'database is locked')."""
    path = sqlite_path(database_url)
    assert path is not None
    async with make_studio() as studio:
        task_id = (await studio.generate())["task_id"]
        await wait_for_task(studio.client, task_id)
    with sqlite3.connect(path) as fresh:
        assert fresh.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    # a read that waited on the lock would be refused after 0.2 s (the task was made before:
    # on a busy machine, its own write could wait that long for the runner's)
    async with make_studio(SQLITE_BUSY_TIMEOUT_MS=200) as studio, writes_refused(database_url):
        for path_ in (f"/task/{task_id}", "/tasks", "/history", "/history?q=lighthouse"):
            answer = await studio.client.get(API + path_)
            assert answer.status_code == 200, (path_, answer.text)
