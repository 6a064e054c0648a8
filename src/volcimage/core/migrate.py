"""Schema migrations with Alembic: the only way the schema changes."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
from collections.abc import Iterator
from importlib.resources import files
from typing import TYPE_CHECKING

from sqlalchemy import pool, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession, create_async_engine

from volcimage.core.config import Settings, sqlite_path

if TYPE_CHECKING:
    from alembic.config import Config

# The newest revision in migrations/versions (a unit test holds the two together): a process
# starting on a database already there reads one row instead of importing Alembic (~0.4 s).
SCHEMA_HEAD = "0011"


def alembic_config(settings: Settings) -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(files("volcimage") / "migrations"))
    config.set_main_option("sqlalchemy.url", settings.DATABASE_URL.replace("%", "%%"))
    return config


def migrate(settings: Settings, revision: str = "head") -> None:
    """Upgrade the database to `revision`. Blocking: call it from a thread inside an event loop."""
    settings.ensure_dirs()
    if revision == "head" and asyncio.run(stored_revision(settings.DATABASE_URL)) == SCHEMA_HEAD:
        return
    from alembic import command

    with _one_at_a_time(settings):
        command.upgrade(alembic_config(settings), revision)


async def revision_of(db: AsyncConnection | AsyncSession) -> str | None:
    """The revision Alembic recorded, read over this connection or session; None for an empty
    table. A database Alembic never touched has no table: the read raises."""
    found = await db.scalar(text("SELECT version_num FROM alembic_version"))
    return None if found is None else str(found)


async def stored_revision(database_url: str) -> str | None:
    """The revision the database is at; None for a database Alembic never touched."""
    engine = create_async_engine(database_url, poolclass=pool.NullPool)
    try:
        async with engine.connect() as connection:
            return await revision_of(connection)
    except (DBAPIError, OSError):  # a new database, or none: Alembic says which
        return None
    finally:
        await engine.dispose()


@contextlib.contextmanager
def _one_at_a_time(settings: Settings) -> Iterator[None]:
    """Processes started together (the API and its workers) migrate in turn. PostgreSQL takes
    an advisory lock (migrations/env.py); SQLite has none, so they lock a file beside the
    database, which is only ever shared by processes of one machine."""
    database = sqlite_path(settings.DATABASE_URL) if settings.is_sqlite else None
    if database is None:
        yield
        return
    path = f"{database}.migrate-lock"
    try:
        lock = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)  # NFS locks only files open to write
    except PermissionError:  # made by another user (`volcimage migrate` run as root)
        lock = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)  # let go when the file closes, or the process dies
        yield
    finally:
        os.close(lock)
