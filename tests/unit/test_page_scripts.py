"""Every module main.js pulls in is named in index.html for preloading (else the browser finds
them one import at a time). Their size limit is tests/unit/test_layout.py's."""

from __future__ import annotations

import re
from pathlib import Path

STATIC = Path(__file__).parents[2] / "src/volcimage/web/static"
SCRIPTS = sorted((STATIC / "js").rglob("*.js"))


def test_index_preloads_every_module_main_imports() -> None:
    html = (STATIC / "index.html").read_text(encoding="utf-8")
    preloaded = set(re.findall(r'<link rel="modulepreload" href="/static/([^"]+)">', html))
    started = {"js/theme.js", "js/main.js"}  # by their own <script> tags
    assert preloaded == {str(p.relative_to(STATIC)) for p in SCRIPTS} - started
