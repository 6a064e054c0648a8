"""The caller as a FastAPI dependency (the rules of what a caller sees are in visibility.py,
which the worker and the CLI use without FastAPI)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends
from starlette.requests import HTTPConnection

from volcimage.auth.visibility import Caller, get_caller


async def _caller(request: HTTPConnection) -> Caller:
    return get_caller(request)


CallerDep = Annotated[Caller, Depends(_caller)]
