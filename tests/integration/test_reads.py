"""db.Reads: where a read runs. On a SQLite file, whole on the synchronous driver: in a worker
thread, or on the loop's thread when it is an index lookup; otherwise (PostgreSQL, an in-memory
SQLite database) on the async session."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from tests.support import drop_connections, process_env
from volcimage.core.config import load_settings
from volcimage.core.db import Reads, create_engine


def where_and_what(session: Session, number: int) -> tuple[bool, int | None]:
    on_loop_thread = threading.current_thread() is threading.main_thread()
    return on_loop_thread, session.scalar(text("SELECT CAST(:n AS INTEGER)"), {"n": number})


@contextlib.asynccontextmanager
async def open_reads(tmp_path: Path, url: str) -> AsyncIterator[Reads]:
    settings = load_settings(_env_file=None, **process_env(tmp_path, url))
    settings.ensure_dirs()
    engine = create_engine(settings)
    reads = Reads(settings, engine)
    try:
        yield reads
    finally:
        await reads.dispose()
        await engine.dispose()


async def read_once(tmp_path: Path, url: str, *, indexed: bool = False) -> tuple[bool, int | None]:
    async with open_reads(tmp_path, url) as reads:
        return await reads(where_and_what, 7, indexed=indexed)


async def test_a_read_runs_in_one_go_where_its_driver_is_cheapest(
    tmp_path: Path, database_url: str
) -> None:
    on_loop_thread, value = await read_once(tmp_path, database_url)
    assert value == 7
    assert on_loop_thread is database_url.startswith("postgresql")


async def test_an_index_lookup_runs_on_the_loop_thread_everywhere(
    tmp_path: Path, database_url: str
) -> None:
    assert await read_once(tmp_path, database_url, indexed=True) == (True, 7)


async def test_an_in_memory_database_is_read_on_its_own_connection(tmp_path: Path) -> None:
    # A second, synchronous engine would open a different, empty in-memory database.
    assert await read_once(tmp_path, "sqlite+aiosqlite://") == (True, 7)


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)  # a server matter
async def test_a_read_on_a_dropped_connection_runs_again_on_a_fresh_one(
    tmp_path: Path, database_url: str
) -> None:
    """The read pool does not ping before each read: a restart or failover is met by one
    repeat instead, and only a dropped connection is a reason to repeat."""
    async with open_reads(tmp_path, database_url) as reads:
        assert (await reads(where_and_what, 1))[1] == 1  # a pooled connection now
        assert await drop_connections(database_url) >= 1
        assert (await reads(where_and_what, 2))[1] == 2
        with pytest.raises(DBAPIError) as failed:
            await reads(lambda session: session.scalar(text("SELECT 1/0")))
        assert not failed.value.connection_invalidated
