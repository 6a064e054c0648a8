"""Schema migrations with Alembic: the only way the schema changes."""

from __future__ import annotations

from importlib.resources import files

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory

from volcimage.config import Settings


def alembic_config(settings: Settings) -> Config:
    config = Config()
    config.set_main_option("script_location", str(files("volcimage") / "migrations"))
    config.set_main_option("sqlalchemy.url", settings.DATABASE_URL.replace("%", "%%"))
    return config


def migrate(settings: Settings, revision: str = "head") -> None:
    """Upgrade the database to `revision`. Blocking: call it from a thread inside an event loop."""
    settings.ensure_dirs()
    command.upgrade(alembic_config(settings), revision)


def head_revision(settings: Settings) -> str | None:
    return ScriptDirectory.from_config(alembic_config(settings)).get_current_head()
