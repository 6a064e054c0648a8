"""Passwords: argon2id hashes, and a sign-in check that costs as much for an unknown user."""

from __future__ import annotations

import asyncio
import secrets
from functools import cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from volcimage.auth.models import User
from volcimage.core.db import utcnow
from volcimage.core.errors import ValidationError

HASHER = PasswordHasher()  # argon2id with the library's current recommended costs


@cache
def _dummy_hash() -> str:
    return HASHER.hash(secrets.token_hex(16))


async def hash_password(password: str) -> str:
    return await asyncio.to_thread(HASHER.hash, check_password(password))


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


MIN_PASSWORD = 8


MAX_PASSWORD = 200


def check_password(password: str) -> str:
    if not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
        raise ValidationError(
            f"A password is {MIN_PASSWORD} to {MAX_PASSWORD} characters long",
            {"field": "password"},
        )
    return password
