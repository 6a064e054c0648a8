"""The model catalog (catalog.json): what each model accepts, used by the API, runner and UI."""

from __future__ import annotations

import json
from functools import lru_cache
from importlib.resources import files
from typing import Any, Literal

from pydantic import BaseModel, Field

from volcimage.core.errors import ValidationError

Param = Literal["seed", "scale", "steps", "negative_prompt", "watermark"]


class SizeRule(BaseModel):
    # adaptive: the output follows the reference image; no size is asked for
    mode: Literal["sides", "area", "adaptive"]
    min_side: int = 1
    max_side: int = 65536
    min_pixels: int = 1
    max_pixels: int = 1 << 40
    min_ratio: float = 0.0
    max_ratio: float = float("inf")

    def check(self, width: int, height: int) -> str | None:
        """Why (width, height) is not allowed, or None."""
        if self.mode == "adaptive":
            return "the size follows the reference image; give no width or height"
        if self.mode == "sides":
            for side in (width, height):
                if not self.min_side <= side <= self.max_side:
                    return f"width and height must each be {self.min_side}–{self.max_side} px"
            return None
        pixels = width * height
        if not self.min_pixels <= pixels <= self.max_pixels:
            return (
                f"width × height must be {self.min_pixels:,}–{self.max_pixels:,} pixels "
                f"(got {pixels:,})"
            )
        if not self.min_ratio <= width / height <= self.max_ratio:
            return (
                f"aspect ratio (width / height) must be between 1:{1 / self.min_ratio:.0f} "
                f"and {self.max_ratio:g}:1"
            )
        return None


class Range(BaseModel):
    min: float
    max: float
    default: float


class ModelInfo(BaseModel):
    id: str
    name: str
    provider: Literal["ark", "visual"]
    upstream_id: str
    kind: Literal["t2i", "i2i"]
    description: str
    description_zh: str = ""
    size_rule: SizeRule
    default_size: str
    size_presets: list[str]
    max_images: int
    max_prompt_length: int
    params: list[Param]
    scale: Range | None = None
    steps: Range | None = None
    price_per_image: float
    currency: str
    # Visual API models run as submit-then-poll jobs unless they answer at once (CVProcess).
    asynchronous: bool = False
    upstream_params: dict[str, Any] = {}
    min_reference_images: int = 0
    max_reference_images: int = 0
    # Seedream 4.x groups: one call, up to this many related images (references included)
    max_group_images: int = 0

    @property
    def default_dimensions(self) -> tuple[int, int]:
        width, height = self.default_size.split("x")
        return int(width), int(height)

    # Seconds a call of one image may take (a group's: this times its size); None: the
    # REQUEST_TIMEOUT setting. MODEL_REQUEST_TIMEOUTS overrides either.
    request_timeout: float | None = Field(None, gt=0)


class Catalog(BaseModel):
    default_model: str
    models: list[ModelInfo]

    def get(self, model_id: str) -> ModelInfo:
        for model in self.models:
            if model.id == model_id:
                return model
        raise ValidationError(
            f"Unknown model '{model_id}'",
            {"field": "model", "allowed": [m.id for m in self.models]},
        )

    def upstream(self, provider: str, upstream_id: str) -> ModelInfo | None:
        """The model that calls `upstream_id` of `provider` (the emulator serves these)."""
        return next(
            (m for m in self.models if m.provider == provider and m.upstream_id == upstream_id),
            None,
        )


@lru_cache
def load_catalog() -> Catalog:
    text = files("volcimage.catalog").joinpath("catalog.json").read_text("utf-8")
    return Catalog.model_validate(json.loads(text))
