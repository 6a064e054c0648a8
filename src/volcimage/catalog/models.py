"""The model catalog (catalog.json): what each model and editing tool accepts, used by the API,
the runner, the emulator and the page (through GET /models). Facts from one third-party source
are listed in a model's `unconfirmed`; prices are dated; an operator retires a model or
overrides a price by setting (`Catalog.configured`), without a code change."""

from __future__ import annotations

import json
from datetime import date
from functools import lru_cache
from importlib.resources import files
from typing import Any, Literal

from pydantic import BaseModel, Field, computed_field

from volcimage.core.config import ConfigError, Settings
from volcimage.core.errors import ValidationError

Param = Literal[
    "seed",
    "scale",
    "steps",
    "negative_prompt",
    "watermark",
    "output_format",
    "optimize_prompt",
    "web_search",
    "use_pre_llm",
    "background",
    "mask",
    "outpaint",
    "upscale",
    "layer_decomposition",
]
# t2i: from a prompt (and references); i2i: from one image; the rest are editing tools
Kind = Literal["t2i", "i2i", "inpaint", "outpaint", "upscale"]


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
            return self._ratio_problem(width, height)
        pixels = width * height
        if not self.min_pixels <= pixels <= self.max_pixels:
            return (
                f"width × height must be {self.min_pixels:,}–{self.max_pixels:,} pixels "
                f"(got {pixels:,})"
            )
        return self._ratio_problem(width, height)

    def _ratio_problem(self, width: int, height: int) -> str | None:
        if not self.min_ratio <= width / height <= self.max_ratio:
            return (
                f"aspect ratio (width / height) must be between 1:{1 / self.min_ratio:.0f} "
                f"and {self.max_ratio:g}:1"
            )
        return None


class InputRule(BaseModel):
    """What an input image (a reference or a tool's source) may be for the upstream."""

    max_bytes: int = 30 * 1024 * 1024
    max_side: int = 6000
    min_side: int = 15
    min_ratio: float = 1 / 16
    max_ratio: float = 16

    def check(self, width: int, height: int, size: int) -> str | None:
        """Why an image of these dimensions and bytes is not accepted, or None."""
        if size > self.max_bytes:
            mb = 1024 * 1024
            return f"it is {size / mb:.1f} MB; the model takes at most {self.max_bytes / mb:.1f} MB"
        if max(width, height) > self.max_side or min(width, height) < self.min_side:
            return f"its sides must be {self.min_side}–{self.max_side} px (it is {width}x{height})"
        if not self.min_ratio <= width / height <= self.max_ratio:
            return f"its aspect ratio {width}:{height} is outside 1:16–16:1"
        return None


class Range(BaseModel):
    min: float
    max: float
    default: float
    integer: bool = False  # Jimeng 4.6's scale is a whole number, 4.0's a fraction


class Price(BaseModel):
    """A price per image from a day on; `max_pixels`: a tier for outputs up to that size."""

    per_image: float
    since: date
    max_pixels: int | None = None


class ModelInfo(BaseModel):
    id: str
    name: str
    provider: Literal["ark", "visual"]
    upstream_id: str
    kind: Kind
    description: str
    description_zh: str = ""
    size_rule: SizeRule
    default_size: str
    size_presets: list[str]
    max_images: int
    max_prompt_length: int
    prompt_required: bool = True  # an upscale needs none
    # a recommendation, not a limit: past it the answer carries a warning
    prompt_guidance: int | None = None
    params: list[Param]
    scale: Range | None = None
    steps: Range | None = None
    # the values a parameter may take on this model (output_format, optimize_prompt, …)
    choices: dict[str, list[str]] = {}
    prices: list[Price]
    currency: str
    # Visual API models run as submit-then-poll jobs unless they answer at once (CVProcess).
    asynchronous: bool = False
    upstream_params: dict[str, Any] = {}
    upstream_aliases: list[str] = []  # other ids the upstream answers to for this model
    min_reference_images: int = 0
    max_reference_images: int = 0
    inputs: InputRule = InputRule()
    # an editing tool or i2i model works on one source image (`source_image_id`)
    takes_source: bool = False
    # Seedream 4.x groups: one call, up to this many related images (references included)
    max_group_images: int = 0
    # the facts of this entry that only one third-party source gives (docs/decisions.md)
    unconfirmed: list[str] = []
    retired: bool = False

    @computed_field  # type: ignore[prop-decorator]
    @property
    def confirmed(self) -> bool:
        return not self.unconfirmed

    @computed_field  # type: ignore[prop-decorator]
    @property
    def price_per_image(self) -> float:
        """Today's price at the default size."""
        return self.price(*self.default_dimensions)

    def price(self, width: int, height: int, on: date | None = None) -> float:
        """The price of one image of this size on a day (today by default)."""
        day = on or date.today()
        current = [p for p in self.prices if p.since <= day] or self.prices[:1]
        latest = max(p.since for p in current)
        tiers = sorted(
            (p for p in current if p.since == latest),
            key=lambda p: p.max_pixels or 1 << 62,
        )
        pixels = width * height
        return next((p for p in tiers if pixels <= (p.max_pixels or 1 << 62)), tiers[-1]).per_image

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
            (
                m
                for m in self.models
                if m.provider == provider and upstream_id in (m.upstream_id, *m.upstream_aliases)
            ),
            None,
        )

    def configured(self, settings: Settings) -> Catalog:
        """This catalog with an operator's changes: models retired by id, and prices (from
        today) in place of the catalog's. Raises ConfigError when a per-model setting names a
        model the catalog does not have: a typo must not pass silently."""
        named = {
            "RETIRED_MODELS": settings.retired_models,
            "PRICE_OVERRIDES": set(settings.price_overrides),
            "MODEL_IMAGES_PER_MINUTE": set(settings.model_images_per_minute),
            "MODEL_REQUEST_TIMEOUTS": set(settings.model_request_timeouts),
        }
        known = {m.id for m in self.models}
        unknown = [
            f"{name}: {', '.join(sorted(ids - known))}"
            for name, ids in named.items()
            if ids - known
        ]
        if unknown:
            raise ConfigError(f"models not in the catalog named by {'; '.join(unknown)}")
        retired, prices = settings.retired_models, settings.price_overrides
        today = date.today()
        models = [
            m.model_copy(
                update={
                    "retired": m.retired or m.id in retired,
                    "prices": [Price(per_image=prices[m.id], since=today)]
                    if m.id in prices
                    else m.prices,
                }
            )
            for m in self.models
        ]
        return self.model_copy(update={"models": models})


@lru_cache
def load_catalog() -> Catalog:
    text = files("volcimage.catalog").joinpath("catalog.json").read_text("utf-8")
    return Catalog.model_validate(json.loads(text))
