"""The schema head the code names without Alembic is the head of its migration scripts."""

from __future__ import annotations

from pathlib import Path

from alembic.script import ScriptDirectory

from tests.support import process_env
from volcimage.core.config import load_settings
from volcimage.core.migrate import SCHEMA_HEAD, alembic_config


def test_schema_head_is_the_newest_migration(tmp_path: Path) -> None:
    settings = load_settings(_env_file=None, **process_env(tmp_path, "sqlite+aiosqlite://"))
    assert ScriptDirectory.from_config(alembic_config(settings)).get_current_head() == SCHEMA_HEAD
