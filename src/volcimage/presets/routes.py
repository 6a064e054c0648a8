"""Prompt templates: list, save, change, delete (the logic is in `service.py`)."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Annotated

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from volcimage.audit import log as audit
from volcimage.auth.deps import CallerDep
from volcimage.core.text import Text
from volcimage.http.deps import SessionDep, StateDep
from volcimage.presets import service
from volcimage.presets.models import PromptTemplate
from volcimage.tasks.params import NegativePrompt, partial

router = APIRouter(prefix="/api/v1", tags=["templates"])
ERRORS: dict[int | str, dict[str, str]] = {
    400: {"description": "Invalid input"},
    404: {"description": "No such template"},
    409: {"description": "The name is taken, or the list is full"},
}
CLEARABLE = ("negative_prompt", "model")
Name = Annotated[Text, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]


# The fields of POST /generate but a template's own (the text, the model) and the images
# (uploads come and go), each optional, with the request's bounds.
if TYPE_CHECKING:  # made when imported: to a type checker, a model
    TemplateParams = BaseModel
else:
    TemplateParams = partial(
        "TemplateParams",
        "The form's settings a template keeps (the fields of POST /generate).",
        without={"prompt", "negative_prompt", "model", "reference_images"},
    )


class TemplateIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    name: Name
    prompt: Text = Field(..., min_length=1, max_length=4000)
    negative_prompt: NegativePrompt | None = None
    model: Text | None = Field(None, max_length=50)
    params: TemplateParams = Field(default_factory=TemplateParams)


class TemplateChange(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    name: Name | None = None
    prompt: Text | None = Field(None, min_length=1, max_length=4000)
    negative_prompt: NegativePrompt | None = None
    model: Text | None = Field(None, max_length=50)
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


@router.get("/templates", response_model=list[TemplatePublic])
async def list_templates(session: SessionDep, caller: CallerDep) -> list[TemplatePublic]:
    """The caller's templates, most recently changed first."""
    return [_public(t) for t in await service.list_templates(session, caller)]


@router.post("/templates", status_code=201, response_model=TemplatePublic, responses=ERRORS)
async def create_template(
    body: TemplateIn, request: Request, session: SessionDep, state: StateDep, caller: CallerDep
) -> TemplatePublic:
    service.check_model(state.catalog, body.model)
    template = await service.create_template(
        session,
        caller,
        body.name,
        prompt=body.prompt,
        negative_prompt=body.negative_prompt,
        model=body.model,
        params=body.params.model_dump(exclude_none=True),
    )
    audit.record(session, request, "template.create", template.template_id, name=body.name)
    await session.commit()
    return _public(template)


@router.patch("/templates/{template_id}", response_model=TemplatePublic, responses=ERRORS)
async def update_template(
    template_id: Text,
    change: TemplateChange,
    session: SessionDep,
    state: StateDep,
    caller: CallerDep,
) -> TemplatePublic:
    """Changes the fields sent; `negative_prompt` or `model` sent as null are cleared."""
    template = await service.get_template(session, template_id, caller)
    service.check_model(state.catalog, change.model)
    sent = change.model_dump(include=change.model_fields_set, exclude={"params"})
    changes = {k: v for k, v in sent.items() if v is not None or k in CLEARABLE}
    if change.params is not None:
        changes["params"] = change.params.model_dump(exclude_none=True)
    await service.update_template(session, template, caller, **changes)
    await session.commit()
    await session.refresh(template)
    return _public(template)


@router.delete("/templates/{template_id}", status_code=204, responses=ERRORS)
async def delete_template(
    template_id: Text, request: Request, session: SessionDep, caller: CallerDep
) -> Response:
    template = await service.get_template(session, template_id, caller)
    await session.delete(template)
    audit.record(session, request, "template.delete", template_id, name=template.name)
    await session.commit()
    return Response(status_code=204)
