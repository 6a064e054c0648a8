"""Faults on our side: a full disk while writing an image, a database locked by another writer
or dropping every connection.
Each ends with the task completed or failed with a clear message, and nothing half-written."""

from __future__ import annotations

import asyncio
import errno
import json
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

from tests.support import PG_ADMIN_DSN, drop_connections, local, serving, wait_for_task
from volcimage.auth import sessions
from volcimage.core.config import load_settings, sqlite_path
from volcimage.core.db import create_engine, create_sessionmaker
from volcimage.core.outages import is_outage
from volcimage.events.bus import MISSED, EventBus
from volcimage.events.relay import start_relay
from volcimage.storage import files
from volcimage.tasks import reads
from volcimage.users import service as users


def full_disk(monkeypatch: pytest.MonkeyPatch, failures: int) -> list[int]:
    """The next `failures` image writes fail with ENOSPC (after creating their temp file)."""
    real = files.write_atomic
    calls = [0]

    def write(path: Path, data: bytes) -> None:
        calls[0] += 1
        if calls[0] <= failures:
            raise OSError(errno.ENOSPC, "No space left on device")
        real(path, data)

    monkeypatch.setattr(files, "write_atomic", write)
    return calls


async def test_disk_full_for_a_moment_is_retried(
    make_studio: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    full_disk(monkeypatch, failures=1)
    async with make_studio() as studio:
        task = await studio.run(num_images=2)
        assert task["status"] == "completed", task
        assert task["retry_count"] == 1 and len(task["images"]) == 2
        assert studio.emulator.generation_calls == 2, "stored answers are not paid again"
        assert not list(studio.settings.DATA_DIR.rglob(".tmp-*"))


async def test_disk_that_stays_full_fails_the_task_clearly(
    make_studio: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    full_disk(monkeypatch, failures=10_000)
    async with make_studio(MAX_RETRY_COUNT=2) as studio:
        task = await studio.run()
        assert task["status"] == "failed"
        assert task["error"]["code"] == "StorageError"
        assert "No space left on device" in task["error"]["message"]
        assert task["images"] == [] and studio.emulator.generation_calls == 1
        assert not list(studio.settings.IMAGE_DIR.rglob("*.*"))


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # a SQLite matter
async def test_database_locked_by_another_writer_only_delays(make_studio: Any) -> None:
    async with make_studio() as studio:
        path = sqlite_path(studio.settings.DATABASE_URL)
        locked, release = threading.Event(), threading.Event()

        def hold_lock() -> None:
            conn = sqlite3.connect(str(path), timeout=30)
            conn.execute("BEGIN EXCLUSIVE")
            locked.set()
            release.wait(10)
            conn.rollback()
            conn.close()

        holder = threading.Thread(target=hold_lock)
        holder.start()
        await asyncio.to_thread(locked.wait, 30)  # off the loop: the app may be mid-write
        started = time.monotonic()
        timer = threading.Timer(1.5, release.set)  # the other writer holds the lock 1.5 s
        timer.start()
        task = await studio.run()
        holder.join()
        assert task["status"] == "completed" and len(task["images"]) == 1
        assert time.monotonic() - started >= 1.4


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)  # a server matter
async def test_database_connections_dropped_mid_task_only_delay(
    make_studio: Any, database_url: str
) -> None:
    """PostgreSQL restarts or a failover drop every connection: the task still completes, once
    paid, and the event relay carries on with a new connection."""
    async with make_studio(EMULATOR_LATENCY_MS=1500) as studio:
        other_bus = EventBus()  # another process, listening
        other = await start_relay(
            database_url, other_bus, studio.state.sessionmaker, reads.event_of_note
        )
        assert other is not None
        created = await studio.generate(num_images=2)
        deadline = time.monotonic() + 120  # a safety net for a busy machine
        while studio.emulator.generation_calls < 1:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.02)
        assert await drop_connections(database_url) >= 1
        task = await wait_for_task(studio.client, created["task_id"])
        assert task["status"] == "completed" and len(task["images"]) == 2
        assert studio.emulator.generation_calls == 2, "nothing paid twice"
        try:
            async with other_bus.subscribe() as events:
                after = await studio.run()
                assert after["status"] == "completed"
                while True:  # the other process hears of it: both relays reconnected
                    event = await asyncio.wait_for(events.get(), 10)
                    if event.get("task", {}).get("task_id") == after["task_id"]:
                        break
        finally:
            await other.stop()


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)  # a server matter
def test_pages_are_told_to_read_again_when_the_relay_comes_back(
    tmp_path: Path, database_url: str
) -> None:
    """Notes other processes sent while the relay was reconnecting are lost: its pages hear
    `events.missed` once it is back, and read the tasks again."""
    with (
        serving(tmp_path, database_url) as server,
        local.stream("GET", f"{server.url}/api/v1/events", timeout=30) as stream,
    ):
        lines = stream.iter_lines()
        assert next(lines) == "event: ready"
        assert asyncio.run(drop_connections(database_url)) >= 1
        deadline = time.monotonic() + 20  # the stream pings every 15 s, so lines keep coming
        for line in lines:
            assert time.monotonic() < deadline, "no events.missed"
            if line.startswith("data: ") and line != "data: {}":
                assert json.loads(line[6:]) == {"type": "events.missed"}
                break


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)  # a server matter
async def test_a_process_whose_relay_reconnects_tells_every_other(database_url: str) -> None:
    """A worker's relay alone drops (a network blip): the notes it sent meanwhile never reached
    the API processes, so their pages are told to read again too."""
    engine = create_engine(load_settings(_env_file=None, DATABASE_URL=database_url))
    sessionmaker = create_sessionmaker(engine)
    worker_bus, api_bus = EventBus(), EventBus()
    worker = await start_relay(database_url, worker_bus, sessionmaker, reads.event_of_note)
    admin = await asyncpg.connect(PG_ADMIN_DSN)
    listening = "SELECT pid FROM pg_stat_activity WHERE datname = $1 AND query LIKE 'LISTEN%'"
    database = database_url.rsplit("/", 1)[1]
    worker_pids = {row["pid"] for row in await admin.fetch(listening, database)}
    api = await start_relay(database_url, api_bus, sessionmaker, reads.event_of_note)
    assert worker is not None and api is not None and len(worker_pids) == 1
    try:
        async with api_bus.subscribe() as heard:
            await admin.execute("SELECT pg_terminate_backend($1)", worker_pids.pop())
            assert await asyncio.wait_for(heard.get(), 10) == MISSED
    finally:
        await admin.close()
        await worker.stop()
        await api.stop()
        await engine.dispose()


def raised(action: Callable[[], object]) -> Exception:
    try:
        action()
    except Exception as exc:
        return exc
    raise AssertionError("nothing was raised")


async def test_outages_are_told_from_faults_that_last(tmp_path: Path) -> None:
    """Locked, saturated, refused or dropped: a while. A missing table: for good."""
    path = tmp_path / "locked.db"
    holder = sqlite3.connect(path)
    holder.execute("CREATE TABLE t (x)")
    holder.commit()
    holder.execute("BEGIN IMMEDIATE")  # writers wait, readers go on
    engine = sa.create_engine(
        f"sqlite:///{path}",
        connect_args={"timeout": 0},
        pool_size=1,
        max_overflow=0,
        pool_timeout=0.05,
        poolclass=sa.QueuePool,
    )
    with engine.connect() as conn:
        locked = raised(lambda: conn.execute(sa.text("INSERT INTO t VALUES (1)")))
        missing = raised(lambda: conn.execute(sa.text("SELECT * FROM nowhere")))
        saturated = raised(engine.connect)
    holder.close()
    engine.dispose()
    refused_engine = create_async_engine("postgresql+asyncpg://postgres@127.0.0.1:1/none")
    try:
        async with refused_engine.connect():
            pass
    except Exception as exc:
        refused: Exception = exc
    await refused_engine.dispose()
    assert [is_outage(exc) for exc in (locked, saturated, refused)] == [True, True, True]
    assert not is_outage(missing) and not is_outage(ValueError("a bug"))


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)  # a server matter
async def test_a_connection_dropped_mid_query_is_an_outage(database_url: str) -> None:
    engine = create_async_engine(database_url)
    try:
        async with engine.connect() as conn:
            await conn.execute(sa.text("SELECT 1"))
            assert await drop_connections(database_url) >= 1
            with pytest.raises(sa.exc.DBAPIError) as dropped:
                await conn.execute(sa.text("SELECT 1"))
        assert is_outage(dropped.value)
    finally:
        await engine.dispose()


async def test_outages_answer_503_and_the_unforeseen_500_with_every_header(
    make_studio: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Even where access control reads the signed-in user, before any route: the database
    down is a 503 to repeat, anything else a 500, both in the error shape with CORS and the
    security headers."""
    origin = "https://studio.example"
    async with make_studio(ENABLE_USER_ACCOUNTS="true", ALLOWED_ORIGINS=origin) as studio:
        async with studio.state.sessionmaker() as session:
            await users.create_user(session, "alice", "alice-password")
            await session.commit()
        client = studio.new_client()
        await studio.sign_in(client, username="alice", password="alice-password")
        for fault, status, code in (
            (ConnectionRefusedError(111, "Connect call failed"), 503, "service_unavailable"),
            (ZeroDivisionError("a bug"), 500, "internal_error"),
        ):

            async def fail(*_args: Any, fault: Exception = fault) -> None:
                raise fault

            monkeypatch.setattr(sessions, "caller_for", fail)
            answer = await client.get("/api/v1/tasks", headers={"Origin": origin})
            assert answer.status_code == status and answer.json()["error"] == code
            assert answer.headers["Access-Control-Allow-Origin"] == origin
            assert answer.headers["X-Content-Type-Options"] == "nosniff"
            assert ("Retry-After" in answer.headers) is (status == 503)
            assert "Connect call" not in answer.text and "a bug" not in answer.text
