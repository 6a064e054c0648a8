"""Contract cases for today's Seedream (Seedream 5.0 lite, pro and flash; 4.x options), each
naming the fact of docs/volcengine.md it checks, called with the official Ark SDK unchanged."""

from __future__ import annotations

import base64
import io
from collections.abc import Iterator
from typing import Any

import pytest
from PIL import Image as PILImage
from volcenginesdkarkruntime import Ark
from volcenginesdkarkruntime._exceptions import ArkBadRequestError
from volcenginesdkarkruntime.types.images.images import (
    ContentGenerationTool,
    OptimizePromptOptions,
)

from tests.support import serve_app
from volcimage.core.config import load_settings
from volcimage.emulator.app import create_emulator_app
from volcimage.emulator.render import render_image

S40, S45, S50, PRO, FLASH = (
    "doubao-seedream-4-0-250828",
    "doubao-seedream-4-5-251128",
    "doubao-seedream-5-0-260128",
    "doubao-seedream-5-0-pro-260628",
    "doubao-seedream-5-0-flash-260915",
)
WEB_SEARCH = ContentGenerationTool(type="web_search")
REF = "data:image/png;base64," + base64.b64encode(render_image("r", 1, 64, 64, fmt="png")).decode()


@pytest.fixture(scope="module")
def ark() -> Iterator[Ark]:
    settings = load_settings(_env_file=None, EMULATOR_LATENCY_MS=0)
    with serve_app(create_emulator_app(settings)) as url:
        yield Ark(api_key="test-key", base_url=f"{url}/api/v3", max_retries=0)


def picture(ark: Ark, **kwargs: Any) -> PILImage.Image:
    answer = ark.images.generate(prompt="a lantern", response_format="b64_json", **kwargs)
    data = base64.b64decode(answer.data[0].b64_json)
    return PILImage.open(io.BytesIO(data))


ACCEPTED = [
    ("5.0 lite: size by area from 2560×1440", {"model": S50, "size": "2560x1440"}, (2560, 1440)),
    ("5.0 lite: the largest area, 4096×4096", {"model": S50, "size": "4096x4096"}, (4096, 4096)),
    ("5.0 lite: size token 3K", {"model": S50, "size": "3K"}, (3072, 3072)),
    ("5.0 lite: answers to its alias id", {"model": "doubao-seedream-5-0-lite-260128"}, None),
    ("5.0 lite: 14 reference images", {"model": S50, "image": [REF] * 14}, None),
    ("4.0: 14 reference images", {"model": S40, "image": [REF] * 14}, None),
    ("4.0: size token 1K", {"model": S40, "size": "1K"}, (1024, 1024)),
    ("4.5: the 4K preset 6240×2656", {"model": S45, "size": "6240x2656"}, (6240, 2656)),
    ("5.0 pro: size token 1.5K", {"model": PRO, "size": "1.5K"}, (1536, 1536)),
    ("5.0 pro: the largest area, 4,624,220 px", {"model": PRO, "size": "2150x2150"}, None),
    ("5.0 flash: size token 1K", {"model": FLASH, "size": "1K"}, (1024, 1024)),
    ("5.0 pro: 10 reference images", {"model": PRO, "image": [REF] * 10}, None),
]


@pytest.mark.parametrize(("fact", "kwargs", "size"), ACCEPTED)
def test_accepted(ark: Ark, fact: str, kwargs: dict[str, Any], size: Any) -> None:
    made = picture(ark, **kwargs)
    assert size is None or made.size == size, fact


REFUSED = [
    ("5.0 lite: area below 2560×1440", {"model": S50, "size": "2048x1024"}, "size"),
    ("5.0 lite: ratio beyond 16:1", {"model": S50, "size": "8192x480"}, "size"),
    ("5.0 lite: 15 reference images", {"model": S50, "image": [REF] * 15}, "image"),
    ("5.0 pro: more than 10 reference images", {"model": PRO, "image": [REF] * 11}, "image"),
    ("5.0 pro: area above 4,624,220 px", {"model": PRO, "size": "2160x2160"}, "size"),
    ("5.0 pro: area below 921,600 px", {"model": PRO, "size": "900x900"}, "size"),
    ("4.5: size token 1K is 4.0's only", {"model": S45, "size": "1K"}, "size"),
    ("4.5: takes no output_format", {"model": S45, "output_format": "png"}, "output_format"),
    ("5.0 pro: output_format png only", {"model": PRO, "output_format": "jpeg"}, "output_format"),
    (
        "5.0 lite: no transparent background",
        {"model": S50, "extra_body": {"background": "transparent"}},
        "background",
    ),
    ("4.0: takes no web_search tool", {"model": S40, "tools": [WEB_SEARCH]}, "tools"),
    (
        "4.5: prompt optimisation mode fast is 4.0's and 5.0 pro's only",
        {"model": S45, "optimize_prompt_options": OptimizePromptOptions(mode="fast")},
        "optimize_prompt_options.mode",
    ),
    (
        "5.0 flash: prompt optimisation mode fast is refused",
        {"model": FLASH, "optimize_prompt_options": OptimizePromptOptions(mode="fast")},
        "optimize_prompt_options.mode",
    ),
]


@pytest.mark.parametrize(("fact", "kwargs", "param"), REFUSED)
def test_refused(ark: Ark, fact: str, kwargs: dict[str, Any], param: str) -> None:
    with pytest.raises(ArkBadRequestError) as info:
        ark.images.generate(prompt="a lantern", **kwargs)
    assert info.value.code == "InvalidParameter" and info.value.param == param, fact


@pytest.mark.parametrize(("fmt", "expected"), [("png", "PNG"), ("jpeg", "JPEG")])
def test_seedream_5_lite_output_format(ark: Ark, fmt: str, expected: str) -> None:
    """Fact: 5.0 lite's output_format is png or jpeg (JPEG when not given)."""
    assert picture(ark, model=S50, output_format=fmt).format == expected
    assert picture(ark, model=S50).format == "JPEG"


def test_seedream_5_pro_transparent_background_is_a_png_with_alpha(ark: Ark) -> None:
    """Fact: 5.0 pro/flash take background "transparent": a PNG with an alpha channel."""
    made = picture(ark, model=PRO, output_format="png", extra_body={"background": "transparent"})
    assert made.format == "PNG" and made.mode == "RGBA"
    assert made.getchannel("A").getextrema() == (0, 255)  # clear around, opaque inside


def test_web_search_is_counted_in_tool_usage(ark: Ark) -> None:
    """Fact: 5.0 lite's tools [{type: web_search}]; searches counted in usage.tool_usage."""
    answer = ark.images.generate(
        model=S50, prompt="today's weather in Hangzhou", tools=[WEB_SEARCH]
    )
    assert answer.usage.tool_usage.web_search == 1
    plain = ark.images.generate(model=S50, prompt="a lantern")
    assert plain.usage.tool_usage is None


@pytest.mark.parametrize(("model", "mode"), [(S40, "fast"), (PRO, "fast"), (S50, "standard")])
def test_prompt_optimisation_modes(ark: Ark, model: str, mode: str) -> None:
    """Fact: optimize_prompt_options.mode standard on every 4.x/5.x model, fast on 4.0 and 5.0
    pro only."""
    options = OptimizePromptOptions(mode=mode)
    assert ark.images.generate(model=model, prompt="a lantern", optimize_prompt_options=options)


def test_a_layer_decomposition_is_a_base_image_and_its_layers(ark: Ark) -> None:
    """Fact (unconfirmed): 5.0 pro/flash's layer_decomposition makes a base image and up to 16
    layers in one call, each layer a PNG with alpha; other models refuse it."""
    answer = ark.images.generate(
        model=PRO, prompt="a lantern", layer_decomposition=True, response_format="b64_json"
    )
    assert 2 <= len(answer.data) <= 17
    assert answer.usage.generated_images == len(answer.data)
    for item in answer.data[1:]:
        layer = PILImage.open(io.BytesIO(base64.b64decode(item.b64_json)))
        assert layer.format == "PNG" and layer.mode == "RGBA"
    with pytest.raises(ArkBadRequestError) as info:
        ark.images.generate(model=S50, prompt="a lantern", layer_decomposition=True)
    assert info.value.param == "layer_decomposition"
