"""What every part of a process shares: settings, database, store, catalog and event bus."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from limits.aio.storage import MemoryStorage
from limits.aio.strategies import MovingWindowRateLimiter
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from volcimage.catalog.models import Catalog
from volcimage.core.config import Settings
from volcimage.core.db import Reads
from volcimage.events.bus import EventBus
from volcimage.storage.files import Store

if TYPE_CHECKING:
    from fastapi import FastAPI


@dataclass
class State:
    settings: Settings
    engine: AsyncEngine
    sessionmaker: async_sessionmaker[AsyncSession]
    reads: Reads
    catalog: Catalog
    store: Store
    bus: EventBus
    emulator: FastAPI | None = None  # demo mode: the built-in emulator, shared by all callers
    # Failed sign-ins per client, in this process: a guessing client is slowed, not locked out
    login_attempts: MovingWindowRateLimiter = field(
        default_factory=lambda: MovingWindowRateLimiter(MemoryStorage())
    )
