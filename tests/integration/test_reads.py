"""db.Reads: where a read runs. On a SQLite file, whole on the synchronous driver: in a worker
thread, or on the loop's thread when it is an index lookup; otherwise (PostgreSQL, an in-memory
SQLite database) on the async session."""

from __future__ import annotations

import threading
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.orm import Session

from tests.support import process_env
from volcimage.config import load_settings
from volcimage.db import Reads, create_engine


def where_and_what(session: Session, number: int) -> tuple[bool, int | None]:
    on_loop_thread = threading.current_thread() is threading.main_thread()
    return on_loop_thread, session.scalar(text("SELECT CAST(:n AS INTEGER)"), {"n": number})


async def read_once(tmp_path: Path, url: str, *, indexed: bool = False) -> tuple[bool, int | None]:
    settings = load_settings(_env_file=None, **process_env(tmp_path, url))
    settings.ensure_dirs()
    engine = create_engine(settings)
    reads = Reads(settings, engine)
    try:
        return await reads(where_and_what, 7, indexed=indexed)
    finally:
        await reads.dispose()
        await engine.dispose()


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
