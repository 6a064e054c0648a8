"""The audit log: one row per change, in the change's own transaction (both or neither)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from volcimage.tasks.deps import get_session
from volcimage.tasks.models import AuditEntry

router = APIRouter(prefix="/api/v1", tags=["audit"])
SessionDep = Annotated[AsyncSession, Depends(get_session)]


def actor_of(request: Request) -> str:
    """How the caller proved who it is; never the key or any secret itself."""
    headers = request.headers
    if headers.get("x-api-key") or headers.get("authorization", "").lower().startswith("bearer "):
        return "api-key"
    if "volcimage_session" in request.cookies:
        return "session"
    return "anonymous"


def client_of(request: Request) -> str | None:
    return request.headers.get("x-real-ip") or (request.client.host if request.client else None)


def record(
    session: AsyncSession,
    request: Request,
    action: str,
    target: str | None = None,
    **detail: Any,
) -> None:
    session.add(
        AuditEntry(
            actor=actor_of(request),
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
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    action: Annotated[str | None, Query(max_length=50)] = None,
) -> list[AuditPublic]:
    """The latest entries, newest first."""
    stmt = select(AuditEntry).order_by(AuditEntry.id.desc()).limit(limit)
    if action:
        stmt = stmt.where(AuditEntry.action == action)
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
