"""Schema migrations with Alembic: the only way the schema changes."""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from importlib.resources import files

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory

from volcimage.core.config import Settings, sqlite_path


def alembic_config(settings: Settings) -> Config:
    config = Config()
    config.set_main_option("script_location", str(files("volcimage") / "migrations"))
    config.set_main_option("sqlalchemy.url", settings.DATABASE_URL.replace("%", "%%"))
    return config


def migrate(settings: Settings, revision: str = "head") -> None:
    """Upgrade the database to `revision`. Blocking: call it from a thread inside an event loop."""
    settings.ensure_dirs()
    with _one_at_a_time(settings):
        command.upgrade(alembic_config(settings), revision)


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


def head_revision(settings: Settings) -> str | None:
    return ScriptDirectory.from_config(alembic_config(settings)).get_current_head()
