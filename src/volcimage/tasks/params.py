"""The generation parameters, typed once: `GenerationParams` is the body of POST /generate,
`TaskParams` what a task holds (stored by `task_columns`, read back by `of_task`), the runner's
input, the provider request's source (queue/calls.image_request) and a file's metadata;
`partial` makes the presets' view; GET /models gives the page its JSON Schema.

A new parameter is a field here, stored in the task's `params` JSON — unless `tasks` has a
column of that name (a migration adds it; TaskPublic shows it). A provider takes it in
`image_request` and its own arguments; a model that does not take it says so in the catalog.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, create_model, field_validator
from pydantic.fields import FieldInfo

from volcimage.core.text import Text
from volcimage.tasks.models import Task

Side = Annotated[int, Field(ge=1, le=16384)]
NegativePrompt = Annotated[Text, Field(max_length=2000)]


class GenerationParams(BaseModel):
    """What to make. A request may leave the model and the size to the catalog's defaults."""

    model_config = ConfigDict(
        extra="forbid",
        strict=True,  # JSON types as documented: no true for 1, no "2" for 2
        frozen=True,
    )

    prompt: Text = Field(..., description="What to draw; the model's max_prompt_length applies")
    negative_prompt: NegativePrompt | None = None
    model: Text | None = Field(None, description="A catalog id from GET /models")
    width: Side | None = None
    height: Side | None = None
    num_images: int = Field(1, ge=1, le=15)
    steps: int | None = Field(None, ge=1, le=200)
    scale: float | None = Field(None, ge=0, le=100)
    seed: int | None = Field(None, ge=-1, le=2147483647)
    watermark: bool = False
    group: bool = Field(
        False,
        description="Seedream 4.x: one call makes up to num_images related images (a series), "
        "each stored and announced as soon as it is streamed",
    )
    reference_images: list[Text] = Field(
        default_factory=list,
        max_length=14,
        description="Ids from POST /uploads or of stored images, for models that take them",
    )

    @field_validator("prompt")
    @classmethod
    def _prompt_not_blank(cls, value: str) -> str:
        value = value.strip()
        if not value:
            raise ValueError("prompt must not be empty")
        return value

    @field_validator("negative_prompt")
    @classmethod
    def _blank_is_none(cls, value: str | None) -> str | None:
        return value.strip() or None if value is not None else None


# The parameters with a column of their own in `tasks`; the others are in its `params` JSON.
COLUMNS = tuple(name for name in GenerationParams.model_fields if name in Task.__table__.c)
IN_JSON = tuple(name for name in GenerationParams.model_fields if name not in COLUMNS)


class TaskParams(GenerationParams):
    """A task's parameters: the model and the size are chosen (create_task), never None."""

    model: Text
    width: Side
    height: Side

    @classmethod
    def chosen(cls, params: GenerationParams, model: str, width: int, height: int) -> TaskParams:
        """`params` (validated) with the model and size chosen for them."""
        return cls.model_construct(
            **{**dict(params), "model": model, "width": width, "height": height}
        )

    @classmethod
    def of_task(cls, task: Task) -> TaskParams:
        """A task's parameters, from its columns. Stored from a validated value by
        `task_columns`: not validated again."""
        stored = task.params or {}
        values = {name: getattr(task, name) for name in COLUMNS}
        values |= {name: stored[name] for name in IN_JSON if name in stored}
        # stored with where each is; the parameter is the ids
        values["reference_images"] = [ref["id"] for ref in references_of(task)]
        return cls.model_construct(**values)

    def task_columns(self, provider: str, kinds: Sequence[str]) -> dict[str, Any]:
        """The task's columns: a parameter's own, and the `params` JSON with the others, the
        provider, and where each reference image is (`kinds`: "upload" or "image")."""
        values = dict(self)
        columns = {name: values.pop(name) for name in COLUMNS}
        values["reference_images"] = [
            {"kind": kind, "id": ref_id}
            for kind, ref_id in zip(kinds, self.reference_images, strict=True)
        ]
        return {**columns, "params": {**values, "provider": provider}}


def references_of(task: Task) -> list[dict[str, str]]:
    """Where a task's reference images are: `{"kind": "upload" | "image", "id": …}` each."""
    return list((task.params or {}).get("reference_images") or [])


def partial(name: str, doc: str, *, without: Collection[str]) -> type[BaseModel]:
    """A model of GenerationParams' fields but `without`, each optional (None: not said) with
    the same bounds: what a preset keeps. Field validators are not carried: leave their
    fields (prompt, negative_prompt) out."""
    fields: dict[str, Any] = {
        field: _optional(info)
        for field, info in GenerationParams.model_fields.items()
        if field not in without
    }
    config = ConfigDict(extra="forbid", strict=True)
    return create_model(name, __config__=config, __doc__=doc, **fields)


def _optional(info: FieldInfo) -> tuple[Any, FieldInfo]:
    """A field's type and definition, made optional: None by default, the same bounds."""
    kind: Any = info.annotation  # every field here is annotated
    return kind | None, FieldInfo.merge_field_infos(info, default=None, default_factory=None)
