"""SQLite's writers of one process take turns (core/db.WriterQueue): a turn ends however its
connection leaves, and a write that waits too long says what it waited for."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.support import process_env
from volcimage.core.config import load_settings
from volcimage.core.db import WriteLockTimeout, create_engine, create_sessionmaker


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    url = f"sqlite+aiosqlite:///{tmp_path / 'queue.db'}"
    env = process_env(tmp_path, url, SQLITE_BUSY_TIMEOUT_MS=500)
    engine = create_engine(load_settings(_env_file=None, **env))
    async with engine.begin() as conn:
        await conn.execute(text("CREATE TABLE t (x INTEGER)"))
    yield engine
    await engine.dispose()


async def _write(engine: AsyncEngine, value: int) -> None:
    async with create_sessionmaker(engine)() as session:
        await session.execute(text("INSERT INTO t VALUES (:x)"), {"x": value})
        await session.commit()


@pytest.mark.filterwarnings("ignore:The garbage collector is trying to clean up")
async def test_a_session_dropped_unclosed_mid_write_does_not_stop_later_writes(
    engine: AsyncEngine,
) -> None:
    async def forgets_to_close() -> None:
        session = create_sessionmaker(engine)()
        await session.execute(text("INSERT INTO t VALUES (1)"))

    await forgets_to_close()
    gc.collect()  # the connection is cut loose, its transaction rolled back

    await _write(engine, 2)
    async with engine.connect() as conn:
        assert (await conn.execute(text("SELECT x FROM t"))).scalars().all() == [2]


async def test_a_write_that_waits_past_the_timeout_names_what_holds_the_turn(
    engine: AsyncEngine,
) -> None:
    async with create_sessionmaker(engine)() as holding:
        await holding.execute(text("UPDATE t SET x = 0"))
        with pytest.raises(WriteLockTimeout, match=r"held by .*UPDATE t SET x = 0"):
            await _write(engine, 3)
        await holding.commit()
    await _write(engine, 4)  # the turn was given back with the commit
