"""Request dependencies: the app's shared state and a database session per request."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, cast

from fastapi import Depends
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import HTTPConnection

from volcimage.http.state import State


def get_state(request: HTTPConnection) -> State:
    return cast(State, request.app.state.volcimage)


async def get_session(request: HTTPConnection) -> AsyncIterator[AsyncSession]:
    async with get_state(request).sessionmaker() as session:
        yield session


# FastAPI runs a plain `def` dependency in a worker thread: two hops a request, ~0.1 ms of CPU
async def _state(request: HTTPConnection) -> State:
    return get_state(request)


SessionDep = Annotated[AsyncSession, Depends(get_session)]
StateDep = Annotated[State, Depends(_state)]


def client_of(connection: HTTPConnection) -> str | None:
    """The caller's address, for rate limits, sign-in throttling and the audit log alike: the
    peer's, or the one a proxy of TRUSTED_PROXIES forwarded (`app.py` puts uvicorn's
    ProxyHeadersMiddleware in front); forwarding headers from anyone else are ignored."""
    return connection.client.host if connection.client else None
