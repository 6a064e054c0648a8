"""The migrations build exactly the schema the models describe, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from volcimage.config import Settings
from volcimage.db import Base, create_engine
from volcimage.migrate import migrate


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
