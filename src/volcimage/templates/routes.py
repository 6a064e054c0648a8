"""Prompt templates: list, save, rename or change, delete. Templates are personal: with
accounts each user has their own (admins too); without, everyone shares one list."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response
from pydantic import BaseModel, ConfigDict, Field, StringConstraints
from sqlalchemy import ColumnElement, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from volcimage import audit
from volcimage.errors import Conflict, NotFound, ValidationError
from volcimage.tasks.deps import Caller, State, get_caller, get_session, get_state
from volcimage.templates.models import PromptTemplate

router = APIRouter(prefix="/api/v1", tags=["templates"])
SessionDep = Annotated[AsyncSession, Depends(get_session)]
StateDep = Annotated[State, Depends(get_state)]
CallerDep = Annotated[Caller, Depends(get_caller)]
MAX_TEMPLATES = 200
ERRORS: dict[int | str, dict[str, str]] = {
    400: {"description": "Invalid input"},
    404: {"description": "No such template"},
    409: {"description": "The name is taken, or the list is full"},
}
Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]


class TemplateParams(BaseModel):
    """The form's settings a template keeps (the fields of POST /generate)."""

    model_config = ConfigDict(extra="forbid")
    width: int | None = Field(None, ge=1, le=16384)
    height: int | None = Field(None, ge=1, le=16384)
    num_images: int | None = Field(None, ge=1, le=15)
    steps: int | None = Field(None, ge=1, le=200)
    scale: float | None = Field(None, ge=0, le=100)
    seed: int | None = Field(None, ge=-1, le=2147483647)
    watermark: bool | None = None
    group: bool | None = None


class TemplateIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Name
    prompt: str = Field(..., min_length=1, max_length=4000)
    negative_prompt: str | None = Field(None, max_length=2000)
    model: str | None = Field(None, max_length=50)
    params: TemplateParams = Field(default_factory=TemplateParams)


class TemplateChange(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Name | None = None
    prompt: str | None = Field(None, min_length=1, max_length=4000)
    negative_prompt: str | None = Field(None, max_length=2000)
    model: str | None = Field(None, max_length=50)
    params: TemplateParams | None = None


class TemplatePublic(BaseModel):
    template_id: str
    name: str
    prompt: str
    negative_prompt: str | None
    model: str | None
    params: TemplateParams
    created_at: datetime
    updated_at: datetime


def _public(template: PromptTemplate) -> TemplatePublic:
    return TemplatePublic(
        template_id=template.template_id,
        name=template.name,
        prompt=template.prompt,
        negative_prompt=template.negative_prompt,
        model=template.model,
        params=TemplateParams.model_validate(template.params or {}),
        created_at=template.created_at,
        updated_at=template.updated_at,
    )


def _mine(caller: Caller) -> ColumnElement[bool]:
    if caller.user_id is None:
        return PromptTemplate.owner_id.is_(None)
    return PromptTemplate.owner_id == caller.user_id


async def _get(session: AsyncSession, template_id: str, caller: Caller) -> PromptTemplate:
    template = await session.scalar(
        select(PromptTemplate).where(PromptTemplate.template_id == template_id, _mine(caller))
    )
    if template is None:
        raise NotFound(f"Template {template_id} does not exist")
    return template


async def _check_name(session: AsyncSession, name: str, caller: Caller) -> None:
    taken = await session.scalar(
        select(PromptTemplate.id).where(PromptTemplate.name == name, _mine(caller))
    )
    if taken is not None:
        raise Conflict(f"A template named {name!r} exists already", {"field": "name"})


def _check_model(state: State, model: str | None) -> None:
    if model is not None and model not in {m.id for m in state.catalog.models}:
        raise ValidationError(f"Unknown model {model!r}", {"field": "model"})


@router.get("/templates", response_model=list[TemplatePublic])
async def list_templates(session: SessionDep, caller: CallerDep) -> list[TemplatePublic]:
    """The caller's templates, most recently changed first."""
    stmt = (
        select(PromptTemplate)
        .where(_mine(caller))
        .order_by(PromptTemplate.updated_at.desc(), PromptTemplate.id.desc())
    )
    return [_public(t) for t in (await session.scalars(stmt)).all()]


@router.post("/templates", status_code=201, response_model=TemplatePublic, responses=ERRORS)
async def create_template(
    body: TemplateIn, request: Request, session: SessionDep, state: StateDep, caller: CallerDep
) -> TemplatePublic:
    _check_model(state, body.model)
    await _check_name(session, body.name, caller)
    count = await session.scalar(
        select(func.count()).select_from(PromptTemplate).where(_mine(caller))
    )
    if (count or 0) >= MAX_TEMPLATES:
        raise Conflict(f"You have {MAX_TEMPLATES} templates, the most kept; delete one first")
    template = PromptTemplate(
        template_id=str(uuid.uuid4()),
        owner_id=caller.user_id,
        name=body.name,
        prompt=body.prompt,
        negative_prompt=body.negative_prompt,
        model=body.model,
        params=body.params.model_dump(exclude_none=True),
    )
    session.add(template)
    await session.flush()
    audit.record(session, request, "template.create", template.template_id, name=body.name)
    await session.commit()
    return _public(template)


@router.patch("/templates/{template_id}", response_model=TemplatePublic, responses=ERRORS)
async def update_template(
    template_id: str,
    change: TemplateChange,
    session: SessionDep,
    state: StateDep,
    caller: CallerDep,
) -> TemplatePublic:
    template = await _get(session, template_id, caller)
    _check_model(state, change.model)
    if change.name is not None and change.name != template.name:
        await _check_name(session, change.name, caller)
        template.name = change.name
    if change.prompt is not None:
        template.prompt = change.prompt
    if "negative_prompt" in change.model_fields_set:
        template.negative_prompt = change.negative_prompt
    if "model" in change.model_fields_set:
        template.model = change.model
    if change.params is not None:
        template.params = change.params.model_dump(exclude_none=True)
    await session.commit()
    await session.refresh(template)
    return _public(template)


@router.delete("/templates/{template_id}", status_code=204, responses=ERRORS)
async def delete_template(
    template_id: str, request: Request, session: SessionDep, caller: CallerDep
) -> Response:
    template = await _get(session, template_id, caller)
    await session.delete(template)
    audit.record(session, request, "template.delete", template_id, name=template.name)
    await session.commit()
    return Response(status_code=204)
