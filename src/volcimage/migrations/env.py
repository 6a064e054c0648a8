"""Alembic environment: runs migrations on the async engine, one process at a time."""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy import pool, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from volcimage.core.db import Base
from volcimage.presets import models as _templates  # noqa: F401
from volcimage.tasks import models  # noqa: F401 - registers the tables on Base.metadata

MIGRATION_LOCK = 7_310_422  # pg_advisory_lock key: concurrent starters migrate one by one


def _run(connection: Connection) -> None:
    if connection.dialect.name == "sqlite":
        # WAL from the start: switching later needs the file to itself, and a process that
        # switched it while another wrote made readers wait (then fail) on a new database
        connection.exec_driver_sql("PRAGMA journal_mode=WAL")
        connection.commit()
    if connection.dialect.name == "postgresql":
        connection.execute(text(f"SELECT pg_advisory_lock({MIGRATION_LOCK})"))
        connection.commit()
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()
    if connection.dialect.name == "postgresql":
        connection.execute(text(f"SELECT pg_advisory_unlock({MIGRATION_LOCK})"))
        connection.commit()


async def _run_async(url: str) -> None:
    engine = create_async_engine(url, poolclass=pool.NullPool)
    async with engine.connect() as connection:
        await connection.run_sync(_run)
    await engine.dispose()


asyncio.run(_run_async(context.config.get_main_option("sqlalchemy.url") or ""))
