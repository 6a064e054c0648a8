"""Image processing: verify, embed generation parameters, make WebP thumbnails."""

from __future__ import annotations

import hashlib
import io
import json
import struct
import zlib
from dataclasses import dataclass
from typing import Any

from PIL import Image as PILImage

from volcimage.core.errors import UpstreamError

# Refuse decompression bombs from any source before decoding pixels: the largest picture is
# an 8K upscale's result; an upload is held to less (images/uploads.py).
MAX_PIXELS = 8192 * 8192
PILImage.MAX_IMAGE_PIXELS = MAX_PIXELS

METADATA_KEY = "volcimage"
MIME = {"JPEG": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp"}
SUFFIX = {"image/jpeg": ".jpg", "image/png": ".png", "image/webp": ".webp"}


@dataclass(frozen=True)
class StoredImage:
    data: bytes
    digest: str
    mime_type: str
    width: int
    height: int
    thumbnail: bytes
    mode: str = "RGB"  # the colour mode kept (an upload's: L for a mask)


def prepare(raw: bytes, parameters: dict[str, Any], thumb_size: int, quality: int) -> StoredImage:
    """Check the bytes are a whole picture and return them with parameters embedded.

    Raises UpstreamError (retryable) for a truncated or undecodable download.
    """
    try:
        with PILImage.open(io.BytesIO(raw)) as probe:
            fmt = probe.format or ""
            width, height = probe.size
            # a JPEG decodes straight to about the thumbnail's size (DCT scaling), still reading
            # every byte: a quarter of the work, and a truncated download fails all the same
            probe.draft("RGB", (thumb_size, thumb_size))
            probe.load()
            thumbnail = make_thumbnail(probe, thumb_size, quality)
    except (OSError, SyntaxError, PILImage.DecompressionBombError) as exc:
        raise UpstreamError(
            f"The downloaded image is damaged ({type(exc).__name__})",
            upstream_code="BadImage",
            retryable=True,
        ) from None
    if fmt not in MIME:
        raise UpstreamError(
            f"Unexpected image format {fmt or 'unknown'}", upstream_code="BadImage", retryable=False
        )
    text = json.dumps({METADATA_KEY: parameters}, ensure_ascii=False, sort_keys=True)
    data = embed_metadata(raw, fmt, text)
    digest = hashlib.sha256(data).hexdigest()
    return StoredImage(data, digest, MIME[fmt], width, height, thumbnail)


def make_thumbnail(image: PILImage.Image, size: int, quality: int) -> bytes:
    thumb = image.convert("RGB") if image.mode not in ("RGB", "RGBA") else image.copy()
    thumb.thumbnail((size, size), PILImage.Resampling.LANCZOS)
    out = io.BytesIO()
    thumb.save(out, "WEBP", quality=quality, method=4)
    return out.getvalue()


def embed_metadata(raw: bytes, fmt: str, text: str) -> bytes:
    """Insert the parameters without re-encoding pixels (a JPEG COM segment, a PNG iTXt chunk)."""
    payload = text.encode("utf-8")
    if fmt == "JPEG" and len(payload) < 65533:
        segment = b"\xff\xfe" + struct.pack(">H", len(payload) + 2) + payload
        return raw[:2] + segment + raw[2:]
    if fmt == "PNG":
        body = b"iTXt" + METADATA_KEY.encode() + b"\x00\x00\x00\x00\x00" + payload
        chunk = struct.pack(">I", len(body) - 4) + body + struct.pack(">I", zlib.crc32(body))
        at = raw.find(b"IDAT") - 4  # before the pixels, where readers look for metadata
        return raw[:at] + chunk + raw[at:]
    return raw


def read_metadata(data: bytes) -> dict[str, Any] | None:
    """The parameters embedded by `prepare`, read back with Pillow."""
    with PILImage.open(io.BytesIO(data)) as image:
        text = image.info.get("comment") or image.info.get(METADATA_KEY)
    if not text:
        return None
    if isinstance(text, bytes):
        text = text.decode("utf-8")
    value = json.loads(text).get(METADATA_KEY)
    return value if isinstance(value, dict) else None
