"""Request dependencies: the app's shared state and a database session per request."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import cast

from fastapi import FastAPI, Request
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from volcimage.config import Settings
from volcimage.providers.catalog import Catalog
from volcimage.storage.files import Store
from volcimage.tasks.events import EventBus


@dataclass
class State:
    settings: Settings
    engine: AsyncEngine
    sessionmaker: async_sessionmaker[AsyncSession]
    catalog: Catalog
    store: Store
    bus: EventBus
    emulator: FastAPI | None = None  # demo mode: the built-in emulator, shared by all callers


def get_state(request: Request) -> State:
    return cast(State, request.app.state.volcimage)


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    async with get_state(request).sessionmaker() as session:
        yield session
