"""Which seed drew which image: the runner sends it upstream and writes it into the file, the
API shows it on the image; one rule for all three, so they cannot disagree."""

from __future__ import annotations

SLOT_STRIDE = 16  # image positions: slot * SLOT_STRIDE + index within the answer


def slot_seed(seed: int | None, slot: int) -> int | None:
    """Slot i draws with seed + i: a fixed seed gives N different, reproducible images rather
    than N paid copies of one."""
    if seed is None or seed < 0:
        return seed
    return (seed + slot) % 2**31


def image_seed(task_seed: int | None, position: int) -> int | None:
    """The seed that makes the image at `position` again with one image, or None: the seed was
    random (-1 or none given) or the model takes none (Seedream 4.x, groups)."""
    seed = slot_seed(task_seed, position // SLOT_STRIDE)
    return seed if seed is not None and seed >= 0 else None
