"""Reference images in requests, checked as the APIs document (volcengine-api.md §1 "Reference
images"): data URLs or http(s) URLs; decoded data must be a picture within the limits."""

from __future__ import annotations

import base64
import io
import re

from PIL import Image

MAX_BYTES = 10 * 1024 * 1024
MAX_PIXELS = 6000 * 6000
DATA_URL = re.compile(r"data:image/(png|jpeg|jpg|webp|bmp|tiff|gif);base64,(.+)", re.S)


def decode_reference(
    value: object, min_ratio: float, max_ratio: float, max_bytes: int = MAX_BYTES
) -> bytes | None:
    """The picture's bytes (None for an http(s) URL, which cannot be fetched offline).
    Raises ValueError saying what is wrong."""
    if not isinstance(value, str):
        raise ValueError("each image must be a URL or a data URL string")
    if value.startswith(("http://", "https://")):
        return None
    match = DATA_URL.fullmatch(value)
    if match is None:
        raise ValueError("an image must be an http(s) URL or data:image/<format>;base64,…")
    try:
        data = base64.b64decode(match[2], validate=True)
    except ValueError:
        raise ValueError("the image's base64 data does not decode") from None
    check_picture(data, min_ratio, max_ratio, max_bytes)
    return data


def check_picture(
    data: bytes,
    min_ratio: float,
    max_ratio: float,
    max_bytes: int = MAX_BYTES,
    max_side: int | None = None,
) -> tuple[int, int]:
    if len(data) > max_bytes:
        raise ValueError(f"an image is larger than {max_bytes / 1024 / 1024:g} MB")
    try:
        with Image.open(io.BytesIO(data)) as picture:
            width, height = picture.size
    except (OSError, Image.DecompressionBombError):
        raise ValueError("an image cannot be decoded") from None
    if min(width, height) <= 14 or width * height > MAX_PIXELS:
        raise ValueError("an image's sides must be > 14 px and its area ≤ 6000×6000")
    if max_side is not None and max(width, height) > max_side:
        raise ValueError(f"an image's sides must be at most {max_side} px")
    if not min_ratio <= width / height <= max_ratio:
        raise ValueError(f"an image's aspect ratio must be within [{min_ratio:.3g}, {max_ratio:g}]")
    return width, height
