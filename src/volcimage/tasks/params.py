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
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model, field_validator
from pydantic.fields import FieldInfo

from volcimage.core.text import Text
from volcimage.tasks.models import Task

Side = Annotated[int, Field(ge=1, le=16384)]
LAYER_IMAGES = 17  # a layer decomposition: a base image and up to 16 layers, from one call
NegativePrompt = Annotated[Text, Field(max_length=2000)]


class Edges(BaseModel):
    """How far an outpaint extends each edge, as a fraction of that side."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    top: float = Field(0, ge=0, le=1)
    bottom: float = Field(0, ge=0, le=1)
    left: float = Field(0, ge=0, le=1)
    right: float = Field(0, ge=0, le=1)


class GenerationParams(BaseModel):
    """What to make. A request may leave the model and the size to the catalog's defaults."""

    model_config = ConfigDict(
        extra="forbid",
        strict=True,  # JSON types as documented: no true for 1, no "2" for 2
        frozen=True,
    )

    prompt: Text = Field(
        "",
        description="What to draw; the model's max_prompt_length applies. Only an upscale "
        "takes none",
    )
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
    output_format: Literal["png", "jpeg"] | None = Field(None, description="Seedream 5.0")
    optimize_prompt: Literal["standard", "fast"] | None = Field(
        None, description="Seedream 4.x/5.0: the upstream rewrites the prompt first (a mode)"
    )
    web_search: bool = Field(False, description="Seedream 5.0 lite: may search the web first")
    use_pre_llm: bool | None = Field(
        None, description="Jimeng 3.x, General 3.0: expand the prompt first (upstream: on)"
    )
    background: Literal["transparent"] | None = Field(None, description="Seedream 5.0 pro/flash")
    layer_decomposition: bool = Field(
        False,
        description="Seedream 5.0 pro/flash: one call makes a base image and up to 16 layers "
        f"(it reserves {LAYER_IMAGES} images of the quota and the model's minute)",
    )
    source_image_id: Text | None = Field(
        None, description="The image an editing tool works on: an upload or a stored image"
    )
    mask: Text | None = Field(
        None,
        description="Inpaint: an upload id of a mask the source's size, single-channel or "
        "with alpha; white (or opaque) is redrawn",
    )
    outpaint: Edges | None = Field(None, description="Outpaint: how far to extend each edge")
    upscale: Literal["4k", "8k"] | None = Field(None, description="Upscale: the target")

    @field_validator("prompt")
    @classmethod
    def _prompt_stripped(cls, value: str) -> str:
        return value.strip()

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
        """`params` (validated) with the model and size chosen for them; a layer
        decomposition is asked for as the images its one call may make."""
        chosen = {"model": model, "width": width, "height": height}
        return cls.model_construct(**dict(params) | chosen | {"num_images": images_asked(params)})

    @property
    def one_call(self) -> bool:
        """All its images come from one paid call: a group, or a layer decomposition."""
        return self.group or self.layer_decomposition

    @classmethod
    def of_task(cls, task: Task) -> TaskParams:
        """A task's parameters, from its columns. Stored from a validated value by
        `task_columns`: not validated again."""
        stored = task.params or {}
        values = {name: getattr(task, name) for name in COLUMNS}
        values |= {name: stored[name] for name in IN_JSON if name in stored}
        # stored with where each is; the parameter is the ids (a tool's inputs are its own)
        values["reference_images"] = [
            ref["id"] for ref in references_of(task) if ref.get("role") is None
        ]
        if "outpaint" in values:
            values["outpaint"] = Edges.model_validate(values["outpaint"])
        return cls.model_construct(**values)

    def task_columns(self, provider: str, inputs: Sequence[dict[str, str]]) -> dict[str, Any]:
        """The task's columns: a parameter's own, and the `params` JSON with the others, the
        provider, and where each input image is (`inputs`, see `references_of`)."""
        values = self.model_dump(exclude_none=True)
        columns = {name: values.pop(name, None) for name in COLUMNS}
        values["reference_images"] = list(inputs)
        return {**columns, "params": {**values, "provider": provider}}


def images_asked(params: GenerationParams) -> int:
    """The images a request may make (and the quota and the model's minute reserve): a layer
    decomposition's call may make a base image and 16 layers."""
    return LAYER_IMAGES if params.layer_decomposition else params.num_images


def references_of(task: Task) -> list[dict[str, str]]:
    """Where a task's input images are, in the order the upstream takes them: each
    `{"kind": "upload" | "image", "id": …}`, with `"role": "source" | "mask"` for a tool's."""
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
