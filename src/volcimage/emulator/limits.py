"""The account limits the emulator enforces, each off unless set (constructor or
`POST /_emulator/limits`): the Visual API's generations at once per account (beyond it, code
50430 with HTTP 429) and Ark's images a minute per model (beyond it, HTTP 429
`ModelAccountIpmRateLimitExceeded` with the seconds until the minute frees in Retry-After).
What they saw is kept for tests: the peak of Visual generations at once, and the refusals."""

from __future__ import annotations

import contextlib
import time
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Protocol

from fastapi import FastAPI, Request

WINDOW = 60.0  # seconds: Ark's limit is images per minute


class VisualJob(Protocol):
    created: float  # time.monotonic() of its submit
    images: list[str] | None  # set once it is fetched done


@dataclass
class AccountLimits:
    visual_concurrency: int = 0  # 0: no limit
    ark_images_per_minute: dict[str, int] = field(default_factory=dict)  # upstream model id
    visual_peak: int = 0
    visual_refused: int = 0
    ark_refused: int = 0
    _processing: int = 0  # CVProcess calls under way (they answer at once, keep no job)
    _ark_made: dict[str, deque[tuple[float, int]]] = field(default_factory=dict)

    def admit_visual(self, jobs: Iterable[VisualJob], latency_ms: float) -> bool:
        """Whether one more generation may start: the jobs still generating (younger than the
        latency and not yet fetched) and the CVProcess calls under way are below the limit."""
        now = time.monotonic()
        running = self._processing + sum(
            1 for job in jobs if job.images is None and (now - job.created) * 1000 < latency_ms
        )
        if self.visual_concurrency and running >= self.visual_concurrency:
            self.visual_refused += 1
            return False
        self.visual_peak = max(self.visual_peak, running + 1)
        return True

    @contextlib.contextmanager
    def processing(self) -> Iterator[None]:
        """A CVProcess call under way: it counts while it generates."""
        self._processing += 1
        try:
            yield
        finally:
            self._processing -= 1

    def ark_wait(self, model: str, images: int) -> float | None:
        """None: `images` more of `model` fit its minute (they are counted); else the seconds
        until they would."""
        limit = self.ark_images_per_minute.get(model, 0)
        if not limit:
            return None
        now = time.monotonic()
        made = self._ark_made.setdefault(model, deque())
        while made and made[0][0] <= now - WINDOW:
            made.popleft()
        used = sum(count for _, count in made)
        if used + images <= limit:
            made.append((now, images))
            return None
        self.ark_refused += 1
        freed, wait = used, 0.0
        for at, count in made:  # the oldest leave the minute first
            freed, wait = freed - count, at + WINDOW - now
            if freed + images <= limit:
                break
        return max(wait, 0.0)

    def stats(self) -> dict[str, int]:
        return {
            "visual_peak": self.visual_peak,
            "visual_refused": self.visual_refused,
            "ark_refused": self.ark_refused,
        }


def add_limit_routes(app: FastAPI, limits: AccountLimits) -> None:
    @app.get("/_emulator/limits")
    async def limit_stats() -> dict[str, int]:
        return limits.stats()

    @app.post("/_emulator/limits")
    async def set_limits(request: Request) -> dict[str, int]:
        """Sets the limits from now on: `visual_concurrency` (0: off) and
        `ark_images_per_minute` ({upstream model id: images}, replacing the previous)."""
        body = await request.json()
        limits.visual_concurrency = int(body.get("visual_concurrency", limits.visual_concurrency))
        if "ark_images_per_minute" in body:
            given = body["ark_images_per_minute"] or {}
            limits.ark_images_per_minute = {str(k): int(v) for k, v in given.items()}
        return limits.stats()
