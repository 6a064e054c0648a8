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
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from sqlalchemy.exc import OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from tests.support import PG_ADMIN_DSN, drop_connections, serving, wait_for_task
from volcimage.app import create_app
from volcimage.config import Settings, load_settings, sqlite_path
from volcimage.db import create_engine, create_sessionmaker
from volcimage.storage import files
from volcimage.tasks import service
from volcimage.tasks.events import MISSED, EventBus
from volcimage.tasks.relay import start_relay


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
        locked.wait(5)
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
        other = await start_relay(database_url, other_bus, studio.state.sessionmaker)
        assert other is not None
        created = await studio.generate(num_images=2)
        deadline = time.monotonic() + 10
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
        httpx.stream("GET", f"{server.url}/api/v1/events", timeout=30) as stream,
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
    worker = await start_relay(database_url, worker_bus, sessionmaker)
    admin = await asyncpg.connect(PG_ADMIN_DSN)
    listening = "SELECT pid FROM pg_stat_activity WHERE datname = $1 AND query LIKE 'LISTEN%'"
    database = database_url.rsplit("/", 1)[1]
    worker_pids = {row["pid"] for row in await admin.fetch(listening, database)}
    api = await start_relay(database_url, api_bus, sessionmaker)
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


OUTAGES = [
    ConnectionRefusedError(111, "Connect call failed"),  # asyncpg, nothing listening
    OperationalError("SELECT 1", {}, Exception("database is locked")),  # past the busy timeout
    PoolTimeout("QueuePool limit of size 10 overflow 0 reached"),  # every connection in use
]


@pytest.mark.parametrize("outage", OUTAGES, ids=lambda exc: type(exc).__name__)
async def test_an_unreachable_database_is_a_503_to_retry_in_the_error_shape(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, outage: Exception
) -> None:
    """What the database raises when it is down, locked or saturated reaches the page as a
    clear 503 with Retry-After; anything else unforeseen as a 500 in the same shape."""
    app = create_app(settings, run_tasks=False)

    def fail(*_args: Any, **_kwargs: Any) -> None:
        raise outage

    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            monkeypatch.setattr(service, "list_tasks", fail)
            down = await client.get("/api/v1/tasks")
            assert down.status_code == 503 and down.headers["Retry-After"] == "2"
            assert down.json()["error"] == "service_unavailable"
            assert "SELECT" not in down.text and "QueuePool" not in down.text
            monkeypatch.setattr(service, "list_tasks", lambda *_: 1 / 0)
            broken = await client.get("/api/v1/tasks")
            assert broken.status_code == 500
            assert broken.json() == {
                "error": "internal_error",
                "message": "Something went wrong on our side; it has been logged",
            }
