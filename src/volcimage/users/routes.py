"""Accounts for admins (list, create, change, disable) and for each user (own password)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.ext.asyncio import AsyncSession

from volcimage.audit import log as audit
from volcimage.auth import passwords, sessions
from volcimage.auth.access import (
    COOKIE,
    KEY_SESSION,
    RETRY_AFTER,
    csrf_token,
    failed,
    key_fingerprint,
    key_matches,
    may_try,
)
from volcimage.auth.deps import CallerDep
from volcimage.auth.models import User
from volcimage.auth.visibility import GUEST, Caller, require_admin
from volcimage.core.config import Settings
from volcimage.core.errors import Conflict, RateLimited, Unauthorized, ValidationError
from volcimage.core.text import Text
from volcimage.http.deps import SessionDep, StateDep
from volcimage.http.state import State
from volcimage.tasks.quota import images_admitted_today
from volcimage.users import service

router = APIRouter(prefix="/api/v1", tags=["users"])
sign_in_router = APIRouter(prefix="/api/v1", tags=["access"])  # the page's sign-in
ERRORS: dict[int | str, dict[str, str]] = {
    400: {"description": "Invalid input"},
    403: {"description": "Admins only"},
    404: {"description": "No such user"},
    409: {"description": "The username is taken"},
}


class UserInfo(BaseModel):
    username: str
    is_admin: bool
    disabled: bool
    daily_image_quota: int | None = Field(description="Own figure; null = the default")
    images_today: int
    created_at: datetime
    last_login_at: datetime | None


class UserCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    username: Text = Field(..., min_length=1, max_length=50)
    password: Text = Field(..., min_length=1, max_length=200)
    is_admin: bool = False
    daily_image_quota: int | None = Field(None, ge=0, le=1_000_000)


class UserUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    password: Text | None = Field(None, min_length=1, max_length=200)
    is_admin: bool | None = None
    disabled: bool | None = None
    daily_image_quota: int | None = Field(None, ge=0, le=1_000_000)
    default_quota: bool = Field(False, description="Follow USER_DAILY_IMAGE_QUOTA again")


class PasswordChange(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    current_password: Text = Field(..., min_length=1, max_length=200)
    new_password: Text = Field(..., min_length=1, max_length=200)


def _admin_only(caller: Caller, state: State) -> None:
    if state.settings.access_mode != "accounts":
        raise Conflict("User accounts are off (ENABLE_USER_ACCOUNTS)")
    require_admin(caller, "manage users")


async def _info(session: AsyncSession, user: User) -> UserInfo:
    return UserInfo(
        username=user.username,
        is_admin=user.is_admin,
        disabled=user.disabled,
        daily_image_quota=user.daily_image_quota,
        images_today=await images_admitted_today(session, user.id),
        created_at=user.created_at,
        last_login_at=user.last_login_at,
    )


@router.get("/users", response_model=list[UserInfo], responses=ERRORS)
async def list_users(session: SessionDep, state: StateDep, caller: CallerDep) -> list[UserInfo]:
    _admin_only(caller, state)
    return [await _info(session, u) for u in await service.list_users(session)]


@router.post("/users", status_code=201, response_model=UserInfo, responses=ERRORS)
async def create_user(
    body: UserCreate, request: Request, session: SessionDep, state: StateDep, caller: CallerDep
) -> UserInfo:
    _admin_only(caller, state)
    user = await service.create_user(
        session,
        body.username,
        body.password,
        is_admin=body.is_admin,
        daily_image_quota=body.daily_image_quota,
    )
    audit.record(session, request, "user.create", user.username, is_admin=user.is_admin)
    await session.commit()
    return await _info(session, user)


@router.patch("/users/{username}", response_model=UserInfo, responses=ERRORS)
async def update_user(
    username: Text,
    change: UserUpdate,
    request: Request,
    session: SessionDep,
    state: StateDep,
    caller: CallerDep,
) -> UserInfo:
    """Changes a user; disabling one, or a new password, signs them out everywhere."""
    _admin_only(caller, state)
    user = await service.get_user(session, username)
    if user.id == caller.user_id and (change.disabled or change.is_admin is False):
        raise ValidationError("You cannot disable yourself or drop your own admin role")
    await service.update_user(session, user, **change.model_dump())
    shown = change.model_dump(exclude_none=True, exclude={"password"})
    shown["password_changed"] = change.password is not None
    audit.record(session, request, "user.update", user.username, **shown)
    await session.commit()
    if change.password is not None or change.is_admin is not None or change.disabled:
        state.bus.access_changed(user.id)  # their open streams, in every process, check again
    return await _info(session, user)


@router.put("/session/password", status_code=204, responses={**ERRORS, 401: {}})
async def change_password(
    body: PasswordChange, request: Request, session: SessionDep, state: StateDep, caller: CallerDep
) -> None:
    """The signed-in user's own password; other sign-ins of theirs end."""
    if caller.user_id is None:
        raise Conflict("Only a signed-in user has a password to change")
    user = await passwords.authenticate(session, caller.name, body.current_password)
    if user is None:
        raise Unauthorized("The current password is not valid")
    await service.set_password(
        session, user, body.new_password, keep_token=request.cookies.get(COOKIE)
    )
    audit.record(session, request, "user.password", user.username)
    await session.commit()
    state.bus.access_changed(user.id)


class UserPublic(BaseModel):
    username: str
    is_admin: bool


class SessionInfo(BaseModel):
    mode: Literal["open", "api_key", "basic", "accounts"]
    user: UserPublic | None = Field(None, description="The signed-in user (accounts mode)")
    signed_in: bool
    csrf_token: str | None = Field(None, description="Send as X-CSRF-Token with every change")


class Login(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    api_key: Text | None = Field(None, min_length=1, max_length=500)
    username: Text | None = Field(None, min_length=1, max_length=50)
    password: Text | None = Field(None, min_length=1, max_length=200)


def _session_info(settings: Settings, caller: Caller, cookie: str | None) -> SessionInfo:
    signed_in = caller is not GUEST
    user = None
    if settings.access_mode == "accounts" and caller.user_id is not None:
        user = UserPublic(username=caller.name, is_admin=caller.is_admin)
    csrf = csrf_token(settings, cookie) if cookie and signed_in else None
    return SessionInfo(mode=settings.access_mode, user=user, signed_in=signed_in, csrf_token=csrf)


@sign_in_router.get("/session", response_model=SessionInfo)
async def session_info(request: Request, state: StateDep, caller: CallerDep) -> SessionInfo:
    """How to sign in, who is signed in, and the CSRF token for changes made with the cookie."""
    return _session_info(state.settings, caller, request.cookies.get(COOKIE))


@sign_in_router.post("/session", response_model=SessionInfo, responses={401: {}, 429: {}})
async def login(body: Login, request: Request, session: SessionDep, state: StateDep) -> Response:
    """Signs the page in: with the API key, or with a username and password (accounts mode)."""
    settings = state.settings
    if not await may_try(state, request):
        raise RateLimited("Too many failed sign-ins; wait a minute", retry_after=RETRY_AFTER)
    caller = await _check_login(body, session, settings)
    if caller is None:
        await failed(state, request)
        audit.record(session, request, "login.failed", body.username, actor=body.username)
        await session.commit()
        what = "username or password" if settings.access_mode == "accounts" else "API key"
        raise Unauthorized(f"The {what} is not valid")
    key_hash = None if caller.user_id is not None else key_fingerprint(settings)
    token = await sessions.start_session(
        session, settings, user_id=caller.user_id, key_hash=key_hash
    )
    audit.record(session, request, "login", caller.name, actor=caller.name)
    await session.commit()
    info = _session_info(settings, caller, token)
    response = JSONResponse(info.model_dump(mode="json"))
    secure = request.url.scheme == "https"  # X-Forwarded-Proto only from TRUSTED_PROXIES
    response.set_cookie(
        COOKIE,
        token,
        max_age=settings.SESSION_HOURS * 3600,
        httponly=True,
        samesite="strict",
        secure=secure,
        path="/",
    )
    return response


async def _check_login(body: Login, session: AsyncSession, settings: Settings) -> Caller | None:
    mode = settings.access_mode
    if mode == "accounts":
        if not body.username or not body.password:
            raise ValidationError("Give a username and a password", {"field": "username"})
        user = await passwords.authenticate(session, body.username, body.password)
        return None if user is None else Caller(user.username, user.id, user.is_admin)
    if mode == "api_key":
        if not body.api_key:
            raise ValidationError("Give the API key", {"field": "api_key"})
        return KEY_SESSION if key_matches(settings, body.api_key) else None
    raise ValidationError(f"Nothing to sign in to: access mode is {mode}", {"mode": mode})


@sign_in_router.delete("/session", status_code=204)
async def logout(
    request: Request, session: SessionDep, state: StateDep, caller: CallerDep
) -> Response:
    """Ends this sign-in: its cookie, and at once every stream opened with it, in every process."""
    token = request.cookies.get(COOKIE)
    if token and caller.by_cookie:
        await sessions.end_session(session, token)
        audit.record(session, request, "logout", caller.name)
        await session.commit()
        state.bus.access_changed(caller.user_id)
    response = Response(status_code=204)
    response.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict")
    return response
