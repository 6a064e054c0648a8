"""Accounts: passwords (argon2id), sign-in sessions and each user's daily budget. Used by the
API and the `volcimage user` command alike."""

from __future__ import annotations

import asyncio
import hashlib
import re
import secrets
from datetime import timedelta
from functools import cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from volcimage.config import Settings
from volcimage.db import utcnow
from volcimage.errors import Conflict, NotFound, ValidationError
from volcimage.tasks.deps import Caller
from volcimage.users.models import User, UserSession

HASHER = PasswordHasher()  # argon2id with the library's current recommended costs
USERNAME = re.compile(r"[a-z0-9][a-z0-9._-]{0,49}")
RESERVED = frozenset({"anonymous", "api-key", "session", "basic"})  # actor names in the audit log
MIN_PASSWORD = 8
MAX_PASSWORD = 200


@cache
def _dummy_hash() -> str:
    return HASHER.hash(secrets.token_hex(16))


def normal_username(username: str) -> str:
    name = username.strip().lower()
    if not USERNAME.fullmatch(name) or name in RESERVED:
        raise ValidationError(
            "A username is 1 to 50 letters, digits, dots, dashes or underscores",
            {"field": "username"},
        )
    return name


def check_password(password: str) -> str:
    if not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
        raise ValidationError(
            f"A password is {MIN_PASSWORD} to {MAX_PASSWORD} characters long",
            {"field": "password"},
        )
    return password


async def hash_password(password: str) -> str:
    return await asyncio.to_thread(HASHER.hash, check_password(password))


async def create_user(
    session: AsyncSession,
    username: str,
    password: str,
    *,
    is_admin: bool = False,
    daily_image_quota: int | None = None,
) -> User:
    name = normal_username(username)
    if await session.scalar(select(User.id).where(User.username == name)) is not None:
        raise Conflict(f"User {name} already exists", {"field": "username"})
    user = User(
        username=name,
        password_hash=await hash_password(password),
        is_admin=is_admin,
        disabled=False,
        daily_image_quota=daily_image_quota,
    )
    session.add(user)
    await session.flush()
    return user


async def get_user(session: AsyncSession, username: str) -> User:
    user = await session.scalar(select(User).where(User.username == username.strip().lower()))
    if user is None:
        raise NotFound(f"User {username} does not exist")
    return user


async def list_users(session: AsyncSession) -> list[User]:
    return list((await session.scalars(select(User).order_by(User.username))).all())


async def set_password(
    session: AsyncSession, user: User, password: str, keep_token: str | None = None
) -> None:
    """A new password signs the user out everywhere (but `keep_token`'s sign-in)."""
    user.password_hash = await hash_password(password)
    await end_sessions_of(session, user.id, keep_token)


async def update_user(
    session: AsyncSession,
    user: User,
    *,
    password: str | None = None,
    is_admin: bool | None = None,
    disabled: bool | None = None,
    daily_image_quota: int | None = None,
    default_quota: bool = False,
) -> None:
    """Changes what is given; disabling a user, or a new password, signs them out everywhere."""
    if password is not None:
        await set_password(session, user, password)
    if is_admin is not None:
        user.is_admin = is_admin
    if disabled is not None:
        user.disabled = disabled
        if disabled:
            await end_sessions_of(session, user.id)
    if default_quota:
        user.daily_image_quota = None
    elif daily_image_quota is not None:
        user.daily_image_quota = daily_image_quota


async def authenticate(session: AsyncSession, username: str, password: str) -> User | None:
    """The enabled user with this password, or None. Unknown names cost as much as known ones,
    so response times do not tell which names exist."""
    user = await session.scalar(select(User).where(User.username == username.strip().lower()))
    stored = user.password_hash if user is not None else _dummy_hash()
    if not await asyncio.to_thread(_verify, stored, password):
        return None
    if user is None or user.disabled:
        return None
    if HASHER.check_needs_rehash(user.password_hash):
        user.password_hash = await asyncio.to_thread(HASHER.hash, password)
    user.last_login_at = utcnow()
    return user


def _verify(stored: str, password: str) -> bool:
    try:
        return HASHER.verify(stored, password)
    except (VerificationError, InvalidHashError):
        return False


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
