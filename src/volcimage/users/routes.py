"""Accounts for admins (list, create, change, disable) and for each user (own password)."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.ext.asyncio import AsyncSession

from volcimage import audit
from volcimage.access import COOKIE
from volcimage.errors import Conflict, Forbidden, Unauthorized, ValidationError
from volcimage.quota import images_admitted_today
from volcimage.tasks.deps import (
    Caller,
    CallerDep,
    SessionDep,
    State,
    StateDep,
)
from volcimage.text import Text
from volcimage.users import service
from volcimage.users.models import User

router = APIRouter(prefix="/api/v1", tags=["users"])
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
    if not caller.is_admin:
        raise Forbidden("Only an admin may manage users")


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
    user = await service.authenticate(session, caller.name, body.current_password)
    if user is None:
        raise Unauthorized("The current password is not valid")
    await service.set_password(
        session, user, body.new_password, keep_token=request.cookies.get(COOKIE)
    )
    audit.record(session, request, "user.password", user.username)
    await session.commit()
    state.bus.access_changed(user.id)
