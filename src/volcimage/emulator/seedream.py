"""Seedream 4.x/5.0's options as the emulator takes them (docs/volcengine.md): output format,
prompt optimisation mode, background, the web search tool and layer decomposition, each only
where the catalog says the model takes it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from volcimage.catalog.models import ModelInfo


def seedream_options(
    model: ModelInfo, body: dict[str, Any], invalid: Callable[[str, str], Exception]
) -> dict[str, Any]:
    """Seedream 4.x/5.0's options, each only where the model takes it (the catalog's)."""
    given = {
        "output_format": body.get("output_format"),
        "optimize_prompt": (body.get("optimize_prompt_options") or {}).get("mode"),
        "background": body.get("background"),
    }
    for name, value in given.items():
        if value is None:
            continue
        allowed = model.choices.get(name, [])
        if value not in allowed:
            field = "optimize_prompt_options.mode" if name == "optimize_prompt" else name
            raise invalid(field, f"{model.upstream_id} takes {allowed or 'none'}")
    tools = body.get("tools") or []
    if tools and (tools != [{"type": "web_search"}] or "web_search" not in model.params):
        raise invalid("tools", f"{model.upstream_id} takes only [{{type: web_search}}] or none")
    return {
        "layered": bool(body.get("layer_decomposition")),
        "output_format": given["output_format"] or "jpeg",
        "transparent": given["background"] == "transparent",
        "web_search": bool(tools),
    }
