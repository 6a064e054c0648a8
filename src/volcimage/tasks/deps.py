"""Request dependencies: the app's shared state and a database session per request."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Annotated, cast

from fastapi import Depends, FastAPI
from limits.aio.storage import MemoryStorage
from limits.aio.strategies import MovingWindowRateLimiter
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from starlette.requests import HTTPConnection

from volcimage.config import Settings
from volcimage.db import Reads
from volcimage.providers.catalog import Catalog
from volcimage.storage.files import Store
from volcimage.tasks.events import EventBus


@dataclass(frozen=True)
class Caller:
    """Who is asking. Everyone sees everything unless accounts are on: then a user sees only
    their own tasks, images and uploads, and an admin (or the API key) sees all."""

    name: str  # for the audit log: a username, "api-key", "session", "anonymous" …
    user_id: int | None = None
    is_admin: bool = False  # fail closed: an admin is only ever made on purpose
    # Signed in with the session cookie: a sign-out, or a change to the user, ends it
    by_cookie: bool = False


ANONYMOUS = Caller("anonymous", is_admin=True)  # open mode: everyone may do everything
GUEST = Caller("anonymous")  # not signed in where signing in is required


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


def get_state(request: HTTPConnection) -> State:
    return cast(State, request.app.state.volcimage)


def get_caller(request: HTTPConnection) -> Caller:
    """Set by the access middleware (`access.py`) for every request; a guest without it."""
    return cast(Caller, getattr(request.state, "caller", GUEST))


async def get_session(request: HTTPConnection) -> AsyncIterator[AsyncSession]:
    async with get_state(request).sessionmaker() as session:
        yield session


# FastAPI runs a plain `def` dependency in a worker thread: two hops a request, ~0.1 ms of CPU
async def _state(request: HTTPConnection) -> State:
    return get_state(request)


async def _caller(request: HTTPConnection) -> Caller:
    return get_caller(request)


SessionDep = Annotated[AsyncSession, Depends(get_session)]
StateDep = Annotated[State, Depends(_state)]
CallerDep = Annotated[Caller, Depends(_caller)]
