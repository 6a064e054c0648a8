"""Accounts: passwords (argon2id), sign-in sessions and each user's daily budget. Used by the
API and the `volcimage user` command alike."""

from __future__ import annotations

import re

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from volcimage.auth.models import User
from volcimage.auth.passwords import hash_password
from volcimage.auth.sessions import end_sessions_of
from volcimage.core.errors import Conflict, NotFound, ValidationError

USERNAME = re.compile(r"[a-z0-9][a-z0-9._-]{0,49}")
RESERVED = frozenset({"anonymous", "api-key", "session", "basic"})  # actor names in the audit log


def normal_username(username: str) -> str:
    name = username.strip().lower()
    if not USERNAME.fullmatch(name) or name in RESERVED:
        raise ValidationError(
            "A username is 1 to 50 letters, digits, dots, dashes or underscores",
            {"field": "username"},
        )
    return name


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
