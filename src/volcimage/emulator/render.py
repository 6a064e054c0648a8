"""Deterministic pictures: the same prompt and seed always give the same image."""

from __future__ import annotations

import hashlib
import io
import random

from PIL import Image, ImageDraw, ImageFilter, ImageOps

SKETCH = 192  # drawn small, then scaled: fast at 4096², smooth like a painting


def _palette(prompt: str) -> list[tuple[int, int, int]]:
    digest = hashlib.sha256(prompt.encode("utf-8")).digest()
    return [(digest[i], digest[i + 1], digest[i + 2]) for i in range(0, 18, 3)]


def render_image(
    prompt: str,
    seed: int,
    width: int,
    height: int,
    fmt: str = "jpeg",
    reference: bytes | None = None,
    transparent: bool = False,
) -> bytes:
    """A width × height picture drawn from (prompt, seed); JPEG or PNG bytes. With a reference
    image, the picture is painted over it, so an edit visibly keeps its source."""
    colours = _palette(prompt)
    rng = random.Random(f"{prompt}\x00{seed}")
    scale = SKETCH / max(width, height)
    sw, sh = max(8, round(width * scale)), max(8, round(height * scale))
    top, bottom = colours[0], colours[1]
    sketch = Image.new("RGB", (sw, sh))
    draw = ImageDraw.Draw(sketch)
    for y in range(sh):
        t = y / max(1, sh - 1)
        draw.line(
            [(0, y), (sw, y)],
            fill=tuple(round(a + (b - a) * t) for a, b in zip(top, bottom, strict=True)),
        )
    for _ in range(rng.randint(6, 12)):
        colour = rng.choice(colours[2:])
        cx, cy = rng.uniform(0, sw), rng.uniform(0, sh)
        r = rng.uniform(0.05, 0.3) * max(sw, sh)
        box = [(cx - r, cy - r), (cx + r, cy + r)]
        if rng.random() < 0.6:
            draw.ellipse(box, fill=colour)
        else:
            draw.rectangle(box, fill=colour)
    sketch = sketch.filter(ImageFilter.GaussianBlur(1.2))
    picture = sketch.resize((width, height), Image.Resampling.BICUBIC)
    if reference is not None:
        with Image.open(io.BytesIO(reference)) as source:
            base = ImageOps.fit(source.convert("RGB"), (width, height))
        picture = Image.blend(base, picture, 0.35)
    if transparent:  # a subject on nothing: opaque inside an ellipse, clear around it
        alpha = Image.new("L", (sw, sh), 0)
        ImageDraw.Draw(alpha).ellipse([(sw * 0.15, sh * 0.15), (sw * 0.85, sh * 0.85)], fill=255)
        picture.putalpha(alpha.resize((width, height), Image.Resampling.BILINEAR))
    out = io.BytesIO()
    if fmt.lower() == "png":
        picture.save(out, "PNG", optimize=False, compress_level=1)
    else:
        picture.save(out, "JPEG", quality=90)
    return out.getvalue()
