"""What /health checks: that the database answers and takes writes, and that files can be
stored. Each check gives "ok" or what is wrong, in words an operator can act on."""

from __future__ import annotations

import asyncio
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from volcimage.core.config import Settings, sqlite_path
from volcimage.core.outages import is_outage
from volcimage.storage.files import Store

READ_ONLY = text("SELECT current_setting('transaction_read_only') = 'on' OR pg_is_in_recovery()")


async def database(session: AsyncSession, settings: Settings) -> str:
    file = sqlite_path(settings.DATABASE_URL) if settings.is_sqlite else None
    if file is not None and not await asyncio.to_thread(Path(file).exists):
        # open connections keep a deleted file; every new one would start an empty database
        return "error: the database file is missing"
    try:
        await session.execute(text("SELECT 1"))
        if settings.is_sqlite:
            await session.execute(text("BEGIN IMMEDIATE"))  # takes the write lock, or fails
        else:
            read_only = await session.scalar(READ_ONLY)
            if read_only:
                return "error: read-only, writes are refused"
    except DBAPIError as error:
        cause = str(error.orig).splitlines()[0] if error.orig else type(error).__name__
        return f"error: {'unavailable' if is_outage(error) else 'refuses writes'} ({cause})"
    except OSError as error:  # the process's other writes held the database past the timeout
        return f"error: busy ({type(error).__name__})"
    finally:
        await session.rollback()
    return "ok"


async def storage(store: Store, settings: Settings) -> str:
    problem = await asyncio.to_thread(store.problem, settings.MIN_FREE_DISK_MB * 2**20)
    return "ok" if problem is None else f"error: {problem}"
