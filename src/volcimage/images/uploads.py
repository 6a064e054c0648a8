"""Reference images from users: sniffed, bounded, re-encoded without metadata.

The type comes from the bytes (never the file name or Content-Type), the pixel count is checked
before any pixel is decoded (decompression bombs), and the picture is re-encoded so EXIF
(location, camera, owner) never reaches storage or the upstream.
"""

from __future__ import annotations

import hashlib
import io
import math
import re
import warnings

from PIL import Image as PILImage
from PIL import ImageOps
from pillow_heif import register_heif_opener

from volcimage.core.errors import ValidationError
from volcimage.images.processing import StoredImage, make_thumbnail

register_heif_opener()  # Pillow opens HEIC/HEIF with it; the upload is re-encoded as JPEG
ACCEPTED = {"JPEG", "PNG", "WEBP", "BMP", "TIFF", "GIF", "HEIF"}
PHOTOS = {"JPEG", "HEIF"}  # kept as JPEG; the others as PNG (lossless, alpha kept)
MIN_SIDE = 15  # the API wants each side > 14 px
MAX_PIXELS = 6000 * 6000  # Seedream's largest input
MAX_RATIO = 16
MB = 1024 * 1024
# Pillow refuses a picture over twice MAX_IMAGE_PIXELS as it opens it, saying how many it has
_BOMB_PIXELS = re.compile(r"\((\d+) pixels\)")


def limits(max_bytes: int) -> dict[str, int]:
    """What an upload may be, for the page to check and explain before it sends one."""
    return {
        "max_bytes": max_bytes,
        "max_pixels": MAX_PIXELS,
        "min_side": MIN_SIDE,
        "max_ratio": MAX_RATIO,
    }


def too_large(size: int, max_bytes: int) -> ValidationError:
    shown = math.ceil(size * 10 / MB) / 10  # rounded up: never "10.0 MB; at most 10 MB"
    return _bad(
        f"The file is {shown:g} MB; at most {max_bytes / MB:g} MB are accepted",
        "too_large",
        size=size,
        max_bytes=max_bytes,
    )


def clean_upload(raw: bytes, max_bytes: int, thumb_size: int, quality: int) -> StoredImage:
    """Raises ValidationError (field `file`) saying what is wrong with the picture; its
    `details.reason` (and the numbers beside it) is stable, for the page to say in its words."""
    if not raw:
        raise _bad("The file is empty", "empty")
    if len(raw) > max_bytes:
        raise too_large(len(raw), max_bytes)
    try:
        picture, fmt = _decode(raw)
    except PILImage.DecompressionBombError as exc:
        found = _BOMB_PIXELS.search(str(exc))
        raise _too_many_pixels(int(found.group(1)) if found else None) from None
    except (OSError, SyntaxError, ValueError):
        raise _bad("The file is not a picture that can be read", "unreadable") from None
    width, height = picture.size
    if min(width, height) < MIN_SIDE:
        raise _bad(
            f"Each side must be at least {MIN_SIDE} px (got {width}×{height})",
            "too_small",
            width=width,
            height=height,
            min_side=MIN_SIDE,
        )
    if max(width / height, height / width) > MAX_RATIO:
        raise _bad(
            f"The aspect ratio must be between 1:{MAX_RATIO} and {MAX_RATIO}:1 "
            f"(got {width}×{height})",
            "ratio",
            width=width,
            height=height,
            max_ratio=MAX_RATIO,
        )
    out = io.BytesIO()
    if fmt in PHOTOS:
        picture = picture.convert("L" if picture.mode == "L" else "RGB")
        picture.save(out, "JPEG", quality=95)
        mime = "image/jpeg"
    else:
        has_alpha = picture.mode in ("RGBA", "LA", "PA") or "transparency" in picture.info
        # a grayscale picture stays one channel: it may be an inpaint mask
        mode = "RGBA" if has_alpha else "L" if picture.mode in ("1", "L") else "RGB"
        picture = picture.convert(mode)
        picture.save(out, "PNG", optimize=True)
        mime = "image/png"
    data = out.getvalue()
    thumbnail = make_thumbnail(picture, thumb_size, quality)
    return StoredImage(
        data, hashlib.sha256(data).hexdigest(), mime, width, height, thumbnail, picture.mode
    )


def _decode(raw: bytes) -> tuple[PILImage.Image, str]:
    with warnings.catch_warnings():
        # the pixel count is checked here, before decoding, with a clear message
        warnings.simplefilter("ignore", PILImage.DecompressionBombWarning)
        with PILImage.open(io.BytesIO(raw)) as probe:
            fmt = probe.format or "unknown"
            width, height = probe.size
            if fmt not in ACCEPTED:
                raise _bad(
                    f"{fmt} files are not accepted; use JPEG, PNG, WebP or HEIC",
                    "format",
                    format=fmt,
                )
            if width * height > MAX_PIXELS:
                raise _too_many_pixels(width * height, width, height)
            probe.load()
            return ImageOps.exif_transpose(probe), fmt  # keep how it looks, drop the EXIF


def _too_many_pixels(
    pixels: int | None, width: int | None = None, height: int | None = None
) -> ValidationError:
    side = math.isqrt(MAX_PIXELS)
    got = f"{width}×{height}" if width and height else f"{pixels:,} pixels" if pixels else "it"
    return _bad(
        f"The picture has too many pixels ({got}); at most {side}×{side}",
        "too_many_pixels",
        pixels=pixels,
        width=width,
        height=height,
        max_pixels=MAX_PIXELS,
    )


def _bad(message: str, reason: str, **numbers: object) -> ValidationError:
    return ValidationError(message, {"field": "file", "reason": reason, **numbers})
