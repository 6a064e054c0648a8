"""Prompt templates: the logic behind the routes. Templates are personal: with accounts each
user has their own (admins too); without, everyone shares one list."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from volcimage.auth.visibility import Caller, personal
from volcimage.catalog.models import Catalog
from volcimage.core.errors import Conflict, NotFound, ValidationError
from volcimage.presets.models import PromptTemplate

MAX_TEMPLATES = 200


async def list_templates(session: AsyncSession, caller: Caller) -> list[PromptTemplate]:
    stmt = (
        select(PromptTemplate)
        .where(*personal(caller, PromptTemplate.owner_id))
        .order_by(PromptTemplate.updated_at.desc(), PromptTemplate.id.desc())
    )
    return list((await session.scalars(stmt)).all())


async def get_template(session: AsyncSession, template_id: str, caller: Caller) -> PromptTemplate:
    template = await session.scalar(
        select(PromptTemplate).where(
            PromptTemplate.template_id == template_id, *personal(caller, PromptTemplate.owner_id)
        )
    )
    if template is None:
        raise NotFound(f"Template {template_id} does not exist")
    return template


async def _check_name(session: AsyncSession, name: str, caller: Caller) -> None:
    taken = await session.scalar(
        select(PromptTemplate.id).where(
            PromptTemplate.name == name, *personal(caller, PromptTemplate.owner_id)
        )
    )
    if taken is not None:
        raise Conflict(f"A template named {name!r} exists already", {"field": "name"})


def check_model(catalog: Catalog, model: str | None) -> None:
    if model is not None and model not in {m.id for m in catalog.models}:
        raise ValidationError(f"Unknown model {model!r}", {"field": "model"})


async def create_template(
    session: AsyncSession, caller: Caller, name: str, **fields: Any
) -> PromptTemplate:
    await _check_name(session, name, caller)
    count = await session.scalar(
        select(func.count())
        .select_from(PromptTemplate)
        .where(*personal(caller, PromptTemplate.owner_id))
    )
    if (count or 0) >= MAX_TEMPLATES:
        raise Conflict(f"You have {MAX_TEMPLATES} templates, the most kept; delete one first")
    template = PromptTemplate(
        template_id=str(uuid.uuid4()), owner_id=caller.user_id, name=name, **fields
    )
    session.add(template)
    await session.flush()
    return template


async def update_template(
    session: AsyncSession, template: PromptTemplate, caller: Caller, **changes: Any
) -> None:
    """Sets the given fields; a new name must be free."""
    name = changes.pop("name", None)
    if name is not None and name != template.name:
        await _check_name(session, name, caller)
        template.name = name
    for field, value in changes.items():
        setattr(template, field, value)
    await session.flush()
