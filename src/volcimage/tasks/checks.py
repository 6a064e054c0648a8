"""The model-specific rules a request meets before it is admitted: what the schema cannot say
because it depends on the model (the catalog's). Pure: `check_request` needs no database;
`output_size` and `check_inputs` take the input images once they are found."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import get_args

from volcimage.catalog.models import Catalog, ModelInfo, Param
from volcimage.core.errors import ValidationError
from volcimage.tasks.params import GenerationParams

# The upstream's prompt guidance (a recommendation): 300 Chinese characters, 600 English words
GUIDANCE_WORDS = 600
_HAN = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]")
UPSCALE_SIDES = {"4k": 4096, "8k": 8192}
# What a parameter's value is when it is not given: a value besides it asks for the parameter.
_UNSET: dict[str, object] = {"web_search": False, "watermark": False, "layer_decomposition": False}
OPTIONAL: tuple[str, ...] = get_args(Param)  # each taken only by the models that name it
NEEDED_BY_KIND = {"inpaint": "mask", "outpaint": "outpaint", "upscale": "upscale"}


@dataclass(frozen=True)
class Checked:
    model: ModelInfo
    width: int
    height: int
    warnings: list[str] = field(default_factory=list)


def check_request(request: GenerationParams, catalog: Catalog) -> Checked:
    """Raises ValidationError naming the field; the size is the model's default for a tool
    (known once its source is: `output_size`)."""
    model = catalog.get(request.model or catalog.default_model)
    if model.retired:
        raise ValidationError(
            f"{model.name} ({model.id}) is retired and takes no new tasks; pick another model",
            {"field": "model", "value": model.id, "retired": True},
            code="model_retired",
        )
    warnings = _check_prompt(request, model)
    _check_count(request, model)
    _check_inputs_given(request, model)
    for name in OPTIONAL:
        value = getattr(request, name)
        if value is None or value == _UNSET.get(name):
            continue
        if name not in model.params:
            raise ValidationError(
                f"{model.name} does not take '{name}'",
                {"field": name, "supported": list(model.params)},
            )
        allowed = model.choices.get(name)
        if allowed is not None and value not in allowed:
            raise ValidationError(
                f"{name} must be one of {', '.join(allowed)} for {model.name}",
                {"field": name, "allowed": allowed},
            )
    for name in ("scale", "steps"):
        bounds = getattr(model, name)
        value = getattr(request, name)
        if bounds is None or value is None:
            continue
        if not bounds.min <= value <= bounds.max or (bounds.integer and value != int(value)):
            whole = "a whole number " if bounds.integer else ""
            raise ValidationError(
                f"{name} must be {whole}between {bounds.min:g} and {bounds.max:g} for {model.name}",
                {"field": name, "min": bounds.min, "max": bounds.max}
                | ({"integer": True} if bounds.integer else {}),
            )
    width, height = _checked_size(request, model)
    return Checked(model, width, height, warnings)


def _check_prompt(request: GenerationParams, model: ModelInfo) -> list[str]:
    prompt = request.prompt
    if not prompt and model.prompt_required:
        raise ValidationError("prompt must not be empty", {"field": "prompt"})
    if len(prompt) > model.max_prompt_length:
        raise ValidationError(
            f"Prompt is too long: {len(prompt)} characters, "
            f"{model.name} takes at most {model.max_prompt_length}",
            {"field": "prompt", "max_length": model.max_prompt_length},
        )
    most = model.prompt_guidance
    if most is None:
        return []
    han, words = len(_HAN.findall(prompt)), len(_HAN.sub(" ", prompt).split())
    if han <= most and words <= GUIDANCE_WORDS:
        return []
    return [
        f"The prompt is longer than {model.name} is guided for ({han} Chinese characters, "
        f"{words} words; recommended at most {most} or {GUIDANCE_WORDS}): details past it "
        "may be ignored"
    ]


def _check_count(request: GenerationParams, model: ModelInfo) -> None:
    if request.layer_decomposition and (request.group or request.num_images != 1):
        raise ValidationError(
            "A layer decomposition is one call (a base image and its layers): "
            "give num_images 1 and no group",
            {"field": "num_images", "max": 1},
        )
    if request.group and not model.max_group_images:
        raise ValidationError(
            f"{model.name} does not make image groups", {"field": "group", "value": True}
        )
    most = (
        model.max_group_images - len(request.reference_images)
        if request.group
        else model.max_images
    )
    if request.num_images > most:
        kind = "images in a group" if request.group else "images per task"
        raise ValidationError(
            f"{model.name} makes at most {most} {kind}",
            {"field": "num_images", "max": most},
        )


def _check_inputs_given(request: GenerationParams, model: ModelInfo) -> None:
    refs = request.reference_images
    low, high = model.min_reference_images, model.max_reference_images
    if not low <= len(refs) <= high:
        if high == 0:
            message = f"{model.name} does not take reference images"
        elif low == high:
            message = f"{model.name} takes exactly {low} reference image(s)"
        else:
            message = f"{model.name} takes {low}–{high} reference images"
        raise ValidationError(
            f"{message} (got {len(refs)})",
            {"field": "reference_images", "min": low, "max": high},
        )
    if model.takes_source != (request.source_image_id is not None):
        message = (
            f"{model.name} works on one image: give source_image_id"
            if model.takes_source
            else f"{model.name} takes no source_image_id (it is for editing tools)"
        )
        raise ValidationError(message, {"field": "source_image_id"})
    needed = NEEDED_BY_KIND.get(model.kind)
    if needed and getattr(request, needed) is None:
        raise ValidationError(f"{model.name} needs '{needed}'", {"field": needed})
    edges = request.outpaint
    if edges is not None and not any((edges.top, edges.bottom, edges.left, edges.right)):
        raise ValidationError(
            "outpaint must extend at least one edge", {"field": "outpaint", "min": 0}
        )


def _checked_size(request: GenerationParams, model: ModelInfo) -> tuple[int, int]:
    default_w, default_h = model.default_dimensions
    if model.size_rule.mode == "adaptive":
        if request.width is not None or request.height is not None:
            follows = "source" if model.takes_source else "reference"
            raise ValidationError(
                f"{model.name} takes no size: the result follows the {follows} image",
                {"field": "width"},
            )
        return default_w, default_h
    if (request.width is None) != (request.height is None):
        raise ValidationError(
            "Give both width and height, or neither",
            {"field": "width" if request.width else "height"},
        )
    width, height = request.width or default_w, request.height or default_h
    problem = model.size_rule.check(width, height)
    if problem:
        raise ValidationError(
            f"Size {width}x{height} is not allowed for {model.name}: {problem}",
            {"field": "size", "width": width, "height": height},
        )
    return width, height


def output_size(
    request: GenerationParams, model: ModelInfo, source: tuple[int, int], chosen: tuple[int, int]
) -> tuple[int, int]:
    """The size made from a first input of `source` px: a tool's, or an adaptive model's;
    else `chosen`, the size checked."""
    width, height = source
    if model.kind == "outpaint" and request.outpaint is not None:
        edges = request.outpaint
        return round(width * (1 + edges.left + edges.right)), round(
            height * (1 + edges.top + edges.bottom)
        )
    if model.kind == "upscale" and request.upscale is not None:
        scale = UPSCALE_SIDES[request.upscale] / max(width, height)
        return round(width * scale), round(height * scale)
    if model.size_rule.mode == "adaptive":
        return width, height
    return chosen


@dataclass(frozen=True)
class Input:
    """An input image as found: what the checks need of it."""

    field: str
    image_id: str
    width: int
    height: int
    size: int
    mode: str | None = None  # an upload's colour mode (a mask must be single-channel or alpha)


def check_inputs(model: ModelInfo, inputs: list[Input]) -> None:
    """Each input within the model's limits; a mask the source's size, one channel or alpha."""
    for found in inputs:
        problem = model.inputs.check(found.width, found.height, found.size)
        if problem:
            raise ValidationError(
                f"{found.field} {found.image_id} cannot go to {model.name}: {problem}",
                {"field": found.field, "id": found.image_id},
            )
    source = next((i for i in inputs if i.field == "source_image_id"), None)
    mask = next((i for i in inputs if i.field == "mask"), None)
    if source is None or mask is None:
        return
    if (mask.width, mask.height) != (source.width, source.height):
        raise ValidationError(
            f"The mask is {mask.width}x{mask.height}; it must be the source's size "
            f"{source.width}x{source.height}",
            {"field": "mask", "width": source.width, "height": source.height},
        )
    if mask.mode not in ("L", "1", "LA", "RGBA", "PA"):
        raise ValidationError(
            "The mask must be a single-channel (grayscale) picture or have an alpha channel",
            {"field": "mask", "mode": mask.mode},
        )
