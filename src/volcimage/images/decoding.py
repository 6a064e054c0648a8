"""Picture decodes on a few threads of their own, with a budget of pixels in flight.

A decode holds a core for seconds and about 4 bytes a pixel (a 6000×6000 PNG: 144 MB). On
the default thread pool (`asyncio.to_thread`) eight large uploads left no thread for file
reads, /health or the runner's storing, and memory grew with each one. Here at most `WORKERS`
decode at once, and only while their pictures add up to at most `BUDGET.limit` pixels.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import io
import threading
import warnings
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Concatenate, ParamSpec, TypeVar

from PIL import Image as PILImage

from volcimage.images.processing import MAX_PIXELS

P = ParamSpec("P")
T = TypeVar("T")

WORKERS = 2
THREAD_PREFIX = "volcimage-decode"


class PixelBudget:
    """Pixels being decoded, at most `limit`; waiters are admitted in turn, so a large picture
    is not passed over forever by small ones."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.in_flight = 0
        self._turn = threading.Lock()
        self._room = threading.Condition()

    @contextlib.contextmanager
    def reserve(self, pixels: int) -> Iterator[None]:
        need = min(max(pixels, 1), self.limit)  # a picture over the budget still runs, alone
        with self._turn, self._room:
            self._room.wait_for(lambda: self.in_flight + need <= self.limit)
            self.in_flight += need
        try:
            yield
        finally:
            with self._room:
                self.in_flight -= need
                self._room.notify_all()


BUDGET = PixelBudget(MAX_PIXELS)  # one picture of the largest accepted size, or several smaller
_POOL = ThreadPoolExecutor(WORKERS, thread_name_prefix=THREAD_PREFIX)


async def decode(
    work: Callable[Concatenate[bytes, P], T], raw: bytes, *args: P.args, **kwargs: P.kwargs
) -> T:
    """`work(raw, ...)` on the decode threads, once the pixels of `raw` fit in the budget."""
    job = functools.partial(_within_budget, work, raw, *args, **kwargs)
    return await asyncio.get_running_loop().run_in_executor(_POOL, job)


def _within_budget(
    work: Callable[Concatenate[bytes, P], T], raw: bytes, *args: P.args, **kwargs: P.kwargs
) -> T:
    with BUDGET.reserve(pixels_of(raw)):
        return work(raw, *args, **kwargs)


def pixels_of(raw: bytes) -> int:
    """The pixel count its header gives (no pixel is decoded); 1 for bytes that are not a
    picture, whose `work` says what is wrong."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", PILImage.DecompressionBombWarning)
            with PILImage.open(io.BytesIO(raw)) as probe:
                return int(probe.width * probe.height)
    except (OSError, SyntaxError, ValueError, PILImage.DecompressionBombError):
        return 1
