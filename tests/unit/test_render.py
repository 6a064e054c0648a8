"""Emulator pictures: exact size, deterministic, different prompts look different."""

from __future__ import annotations

import io

import pytest
from PIL import Image, ImageStat

from volcimage.emulator.render import render_image


def mean_colour(data: bytes) -> list[float]:
    with Image.open(io.BytesIO(data)) as image:
        return list(ImageStat.Stat(image.convert("RGB")).mean)


@pytest.mark.parametrize(("fmt", "name"), [("jpeg", "JPEG"), ("png", "PNG")])
def test_exact_size_and_format(fmt: str, name: str) -> None:
    data = render_image("x", 1, 1280, 720, fmt)
    with Image.open(io.BytesIO(data)) as image:
        assert image.format == name and image.size == (1280, 720)


def test_deterministic_for_prompt_and_seed() -> None:
    assert render_image("cat", 3, 256, 256) == render_image("cat", 3, 256, 256)
    assert render_image("cat", 3, 256, 256) != render_image("cat", 4, 256, 256)


def test_different_prompts_are_visibly_different() -> None:
    a, b = (
        mean_colour(render_image("a red fox", 1, 256, 256)),
        mean_colour(render_image("an ocean at night", 1, 256, 256)),
    )
    assert sum(abs(x - y) for x, y in zip(a, b, strict=True)) > 20
