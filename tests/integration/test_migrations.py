"""The migrations build exactly the schema the models describe, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from tests.support import process_env
from volcimage.core.config import Settings
from volcimage.core.db import Base, create_engine
from volcimage.core.migrate import alembic_config, migrate

pytestmark = pytest.mark.fresh_database  # each test migrates a new database itself


async def test_migrations_match_the_models(settings: Settings) -> None:
    await asyncio.to_thread(migrate, settings)
    engine = create_engine(settings)

    def differences(connection: Any) -> list[Any]:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        return list(compare_metadata(context, Base.metadata))

    try:
        async with engine.connect() as connection:
            diff = await connection.run_sync(differences)
    finally:
        await engine.dispose()
    assert diff == []


async def test_no_index_repeats_what_a_unique_constraint_already_indexes(
    settings: Settings,
) -> None:
    """An index on the leading columns of a unique constraint costs every insert and helps no
    read. 0009 drops four; its downgrade puts them back and upgrading again drops them again."""
    await asyncio.to_thread(migrate, settings)
    await asyncio.to_thread(command.downgrade, alembic_config(settings), "0008")
    await asyncio.to_thread(migrate, settings)
    engine = create_engine(settings)

    def redundant(connection: Any) -> list[str]:
        inspector = inspect(connection)
        found = []
        for table in inspector.get_table_names():
            keys = [inspector.get_pk_constraint(table)["constrained_columns"]]
            keys += [u["column_names"] for u in inspector.get_unique_constraints(table)]
            # PostgreSQL lists a unique constraint's own index too: only plain indexes count
            for index in (i for i in inspector.get_indexes(table) if not i["unique"]):
                columns = list(index["column_names"])
                if any(key[: len(columns)] == columns for key in keys):
                    found.append(f"{table}.{index['name']}")
        return found

    try:
        async with engine.connect() as connection:
            assert await connection.run_sync(redundant) == []
            columns = await connection.run_sync(lambda c: inspect(c).get_columns("tasks"))
    finally:
        await engine.dispose()
    assert "result_images" not in {column["name"] for column in columns}


async def test_processes_starting_together_migrate_one_at_a_time(
    tmp_path: Path, database_url: str
) -> None:
    """compose starts the API and its workers at once: each migrates at start, on a new
    database every one of them at the same moment."""
    env = {**os.environ, **process_env(tmp_path, database_url)}
    starters = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "volcimage",
            "migrate",
            env=env,
            cwd=tmp_path,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        for _ in range(4)
    ]
    results = await asyncio.gather(*(starter.communicate() for starter in starters))
    failures = [
        err.decode()[-300:]
        for starter, (_, err) in zip(starters, results, strict=True)
        if starter.returncode
    ]
    assert failures == []
