"""Reference images from users: sniffed, bounded, re-encoded without metadata.

The type comes from the bytes (never the file name or Content-Type), the pixel count is checked
before any pixel is decoded (decompression bombs), and the picture is re-encoded so EXIF
(location, camera, owner) never reaches storage or the upstream.
"""

from __future__ import annotations

import hashlib
import io
import warnings

from PIL import Image as PILImage
from PIL import ImageOps

from volcimage.errors import ValidationError
from volcimage.storage.images import MAX_PIXELS, StoredImage, make_thumbnail

ACCEPTED = {"JPEG", "PNG", "WEBP", "BMP", "TIFF", "GIF"}
MIN_SIDE = 15  # the API wants each side > 14 px
MAX_RATIO = 16


def clean_upload(raw: bytes, max_bytes: int, thumb_size: int, quality: int) -> StoredImage:
    """Raises ValidationError (field `file`) saying what is wrong with the picture."""
    if not raw:
        raise _bad("The file is empty")
    if len(raw) > max_bytes:
        raise _bad(f"The file is {len(raw):,} bytes; at most {max_bytes:,} are accepted")
    try:
        picture, fmt = _decode(raw)
    except (OSError, SyntaxError, PILImage.DecompressionBombError, ValueError):
        raise _bad("The file is not a picture that can be read") from None
    width, height = picture.size
    if min(width, height) < MIN_SIDE:
        raise _bad(f"Each side must be at least {MIN_SIDE} px (got {width}×{height})")
    if max(width / height, height / width) > MAX_RATIO:
        raise _bad("The aspect ratio must be between 1:16 and 16:1")
    out = io.BytesIO()
    if fmt == "JPEG":
        picture.convert("RGB").save(out, "JPEG", quality=95)
        mime = "image/jpeg"
    else:
        has_alpha = picture.mode in ("RGBA", "LA", "PA") or "transparency" in picture.info
        picture.convert("RGBA" if has_alpha else "RGB").save(out, "PNG", optimize=True)
        mime = "image/png"
    data = out.getvalue()
    thumbnail = make_thumbnail(picture, thumb_size, quality)
    return StoredImage(data, hashlib.sha256(data).hexdigest(), mime, width, height, thumbnail)


def _decode(raw: bytes) -> tuple[PILImage.Image, str]:
    with warnings.catch_warnings():
        # the pixel count is checked here, before decoding, with a clear message
        warnings.simplefilter("ignore", PILImage.DecompressionBombWarning)
        with PILImage.open(io.BytesIO(raw)) as probe:
            fmt = probe.format or "unknown"
            width, height = probe.size
            if fmt not in ACCEPTED:
                raise _bad(f"{fmt} files are not accepted; use JPEG, PNG or WebP")
            if width * height > MAX_PIXELS:
                raise _bad(f"{width}×{height} is too many pixels (at most 6000×6000)")
            probe.load()
            return ImageOps.exif_transpose(probe), fmt  # keep how it looks, drop the EXIF


def _bad(message: str) -> ValidationError:
    return ValidationError(message, {"field": "file"})
