"""The page's scripts: none over 500 lines, and every module main.js pulls in named in
index.html for preloading (else the browser finds them one import at a time)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

STATIC = Path(__file__).parents[2] / "src/volcimage/web/static"
SCRIPTS = sorted((STATIC / "js").rglob("*.js"))


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: str(p.relative_to(STATIC)))
def test_no_page_script_is_over_500_lines(script: Path) -> None:
    assert len(script.read_text(encoding="utf-8").splitlines()) <= 500


def test_index_preloads_every_module_main_imports() -> None:
    html = (STATIC / "index.html").read_text(encoding="utf-8")
    preloaded = set(re.findall(r'<link rel="modulepreload" href="/static/([^"]+)">', html))
    started = {"js/theme.js", "js/main.js"}  # by their own <script> tags
    assert preloaded == {str(p.relative_to(STATIC)) for p in SCRIPTS} - started
