"""Sign-in sessions: a random token in the cookie, only its hash in the database."""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from volcimage.auth.models import User, UserSession
from volcimage.auth.visibility import Caller
from volcimage.core.config import Settings
from volcimage.core.db import utcnow


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


async def start_session(
    session: AsyncSession,
    settings: Settings,
    *,
    user_id: int | None = None,
    key_hash: str | None = None,
) -> str:
    """A new sign-in, of a user or with the API key; returns the token for the cookie (only its
    hash is stored)."""
    token = secrets.token_urlsafe(32)
    now = utcnow()
    await session.execute(delete(UserSession).where(UserSession.expires_at < now))
    session.add(
        UserSession(
            token_hash=token_hash(token),
            user_id=user_id,
            key_hash=key_hash,
            expires_at=now + timedelta(hours=settings.SESSION_HOURS),
        )
    )
    return token


async def end_session(session: AsyncSession, token: str) -> None:
    await session.execute(delete(UserSession).where(UserSession.token_hash == token_hash(token)))


async def end_sessions_of(
    session: AsyncSession, user_id: int, keep_token: str | None = None
) -> None:
    kept = [UserSession.token_hash != token_hash(keep_token)] if keep_token else []
    await session.execute(delete(UserSession).where(UserSession.user_id == user_id, *kept))


async def caller_for(session: AsyncSession, token: str) -> Caller | None:
    """The signed-in user a session cookie stands for, or None (unknown, expired, disabled)."""
    row = (
        await session.execute(
            select(User.id, User.username, User.is_admin)
            .join(UserSession, UserSession.user_id == User.id)
            .where(
                UserSession.token_hash == token_hash(token),
                UserSession.expires_at > utcnow(),
                User.disabled.is_(False),
            )
        )
    ).first()
    if row is None:
        return None
    return Caller(row.username, user_id=row.id, is_admin=row.is_admin, by_cookie=True)


async def key_session_valid(session: AsyncSession, token: str, key_hash: str) -> bool:
    """Whether the cookie is a live API-key sign-in made with the key now set."""
    found = await session.scalar(
        select(UserSession.id).where(
            UserSession.token_hash == token_hash(token),
            UserSession.user_id.is_(None),
            UserSession.key_hash == key_hash,
            UserSession.expires_at > utcnow(),
        )
    )
    return found is not None
