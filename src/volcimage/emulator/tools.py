"""The Visual API's editing tools as the emulator serves them (inpaint, outpaint, upscale,
image-to-image): what each takes beside a prompt, and the size of what it makes. The field
names are those the catalog marks unconfirmed ("request fields")."""

from __future__ import annotations

import io
from typing import Any

from PIL import Image

from volcimage.catalog.models import ModelInfo

EDGES = ("top", "bottom", "left", "right")
UPSCALE_SIDES = {"4k": 4096, "8k": 8192}


def output_size(model: ModelInfo, body: dict[str, Any], pictures: list[bytes]) -> tuple[int, int]:
    """The size the tool makes from its inputs; raises ValueError saying what is wrong."""
    if not pictures:
        raise ValueError("binary_data_base64 must hold the source image")
    width, height = _size(pictures[0])
    if model.kind == "inpaint":
        if len(pictures) != 2:
            raise ValueError("inpainting takes two images: the source and its mask")
        with Image.open(io.BytesIO(pictures[1])) as mask:
            if mask.size != (width, height):
                raise ValueError("the mask must be the size of the source image")
            if mask.mode not in ("L", "1", "LA", "RGBA", "PA"):
                raise ValueError("the mask must be single-channel or have an alpha channel")
        return width, height
    if len(pictures) != 1:
        raise ValueError(f"{model.upstream_id} takes one image")
    if model.kind == "outpaint":
        edges = [body.get(edge, 0) for edge in EDGES]
        if any(not isinstance(e, int | float) or not 0 <= e <= 1 for e in edges):
            raise ValueError("top, bottom, left and right must each be in [0, 1]")
        top, bottom, left, right = edges
        if not any(edges):
            raise ValueError("at least one of top, bottom, left, right must be above 0")
        return round(width * (1 + left + right)), round(height * (1 + top + bottom))
    if model.kind == "upscale":
        target = body.get("resolution")
        if target not in UPSCALE_SIDES:
            raise ValueError("resolution must be 4k or 8k")
        scale = UPSCALE_SIDES[target] / max(width, height)
        return round(width * scale), round(height * scale)
    return width, height


def _size(data: bytes) -> tuple[int, int]:
    with Image.open(io.BytesIO(data)) as picture:
        return picture.size
