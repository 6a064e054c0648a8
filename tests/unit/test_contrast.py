"""WCAG AA contrast of the page's colour pairs, in both themes, from the CSS variables."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

CSS = (Path(__file__).parents[2] / "src/volcimage/web/styles/app.css").read_text()
PAIRS = [  # (text, background) as the page uses them
    ("ink", "panel"),
    ("ink", "page"),
    ("ink", "sunken"),
    ("muted", "panel"),
    ("muted", "page"),
    ("muted", "sunken"),
    ("accent-text", "panel"),
    ("accent-text", "accent-soft"),
    ("white", "accent"),
    ("danger", "panel"),
    ("ok", "panel"),
]


def theme(selector: str) -> dict[str, str]:
    block = re.search(re.escape(selector) + r"\s*\{(.*?)\}", CSS, re.S)
    assert block, selector
    colours = dict(re.findall(r"--([a-z-]+):\s*(#[0-9a-fA-F]{6})", block[1]))
    return {**colours, "white": "#ffffff"}


def luminance(hex_colour: str) -> float:
    channels = [int(hex_colour[i : i + 2], 16) / 255 for i in (1, 3, 5)]
    linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def contrast(a: str, b: str) -> float:
    high, low = sorted((luminance(a), luminance(b)), reverse=True)
    return (high + 0.05) / (low + 0.05)


@pytest.mark.parametrize("selector", [":root", ".dark"])
@pytest.mark.parametrize(("text", "background"), PAIRS)
def test_text_meets_aa(selector: str, text: str, background: str) -> None:
    colours = theme(selector)
    ratio = contrast(colours[text], colours[background])
    assert ratio >= 4.5, f"{selector} {text} on {background}: {ratio:.2f}"
