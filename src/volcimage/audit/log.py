"""The audit log: one row per change, in the change's own transaction (both or neither)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import HTTPConnection

from volcimage.audit.models import AuditEntry
from volcimage.auth.deps import CallerDep
from volcimage.auth.visibility import acted_by, get_caller
from volcimage.core.text import Text
from volcimage.http.deps import SessionDep, client_of

router = APIRouter(prefix="/api/v1", tags=["audit"])


def record(
    session: AsyncSession,
    request: HTTPConnection,
    action: str,
    target: str | None = None,
    *,
    actor: str | None = None,
    **detail: Any,
) -> None:
    """`actor` defaults to the caller: a username, or how it proved itself ("api-key",
    "session"), never a key or password."""
    session.add(
        AuditEntry(
            actor=(actor or get_caller(request).name)[:100],
            client=client_of(request),
            action=action,
            target=target,
            detail=detail,
        )
    )


class AuditPublic(BaseModel):
    at: str
    actor: str
    client: str | None
    action: str
    target: str | None
    detail: dict[str, Any]


@router.get("/audit", response_model=list[AuditPublic])
async def audit_log(
    session: SessionDep,
    caller: CallerDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    action: Annotated[Text | None, Query(max_length=50)] = None,
) -> list[AuditPublic]:
    """The latest entries, newest first: everyone's for an admin, one's own for a user."""
    stmt = select(AuditEntry).order_by(AuditEntry.id.desc()).limit(limit)
    if action:
        stmt = stmt.where(AuditEntry.action == action)
    stmt = stmt.where(*acted_by(caller, AuditEntry.actor))
    return [
        AuditPublic(
            at=entry.at.isoformat(),
            actor=entry.actor,
            client=entry.client,
            action=entry.action,
            target=entry.target,
            detail=entry.detail,
        )
        for entry in (await session.scalars(stmt)).all()
    ]
