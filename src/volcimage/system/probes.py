"""Are the upstreams' credentials good? The probe `volcimage doctor` makes (a request that makes
no image and costs nothing, providers' `probe`), kept for a while so /system/info can tell the
page without asking the upstream on every load."""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass
from typing import Any

from volcimage.catalog.models import Catalog
from volcimage.core.config import Settings
from volcimage.core.errors import UpstreamError
from volcimage.providers.base import Provider
from volcimage.providers.registry import build_providers

VISUAL_REGION, VISUAL_SERVICE = "cn-north-1", "cv"  # where the Visual API documents itself
KEEP_GOOD = 300.0  # seconds a good answer is kept
KEEP_BAD = 30.0  # a refusal is asked again sooner: the operator may be fixing it
WAIT = 5.0  # how long /system/info waits for a probe under way before answering without it


@dataclass(frozen=True)
class Probe:
    connected: bool
    detail: str
    checked_at: float  # time.monotonic()

    def fresh(self, now: float) -> bool:
        return now - self.checked_at < (KEEP_GOOD if self.connected else KEEP_BAD)


async def prove(name: str, provider: Provider, catalog: Catalog, settings: Settings) -> Probe:
    """One provider's credentials, proved without paying; what failed, named by its setting."""
    model = next(m for m in catalog.models if m.provider == name)
    try:
        said = await provider.probe(model.upstream_id)
    except UpstreamError as error:
        return Probe(False, refused(name, error, settings), time.monotonic())
    return Probe(True, said, time.monotonic())


def refused(name: str, error: UpstreamError, settings: Settings) -> str:
    code = error.upstream_code
    if error.http_status is None:  # never answered
        url = settings.ARK_BASE_URL if name == "ark" else settings.VOLC_BASE_URL
        return f"could not be reached at {url} ({code})"
    if name == "ark":
        return f"ARK_API_KEY was refused ({code})"
    if code == "InvalidAccessKey":
        return f"VOLC_ACCESS_KEY was refused ({code})"
    if code == "SignatureDoesNotMatch":
        scope = (settings.VOLC_REGION, settings.VOLC_SERVICE)
        if scope != (VISUAL_REGION, VISUAL_SERVICE):
            return (
                f"VOLC_REGION/VOLC_SERVICE are {scope[0]}/{scope[1]}, the API's are "
                f"{VISUAL_REGION}/{VISUAL_SERVICE} ({code})"
            )
        return f"VOLC_SECRET_KEY was refused ({code})"
    return f"VOLC_ACCESS_KEY/VOLC_SECRET_KEY were refused ({code})"


class Probes:
    """The last probe of each provider whose calls go to the real API, asked again once stale;
    one probe at a time however many pages ask."""

    def __init__(self, settings: Settings, catalog: Catalog, emulator: Any = None) -> None:
        self.settings = settings
        self.catalog = catalog
        self.emulator = emulator
        self._results: dict[str, Probe] = {}
        self._running: asyncio.Task[None] | None = None

    async def results(self, wait: float = WAIT) -> dict[str, Probe]:
        """The probes known, after waiting up to `wait` s for one under way."""
        now = time.monotonic()
        real = [n for n, s in self.settings.provider_states().items() if s == "real"]
        stale = any(n not in self._results or not self._results[n].fresh(now) for n in real)
        if stale and (self._running is None or self._running.done()):
            self._running = asyncio.create_task(self._probe(real))
        if self._running is not None and not self._running.done():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(self._running), wait)
        return dict(self._results)

    async def _probe(self, names: list[str]) -> None:
        providers = build_providers(self.settings, self.emulator)
        try:
            for name in names:
                self._results[name] = await prove(
                    name, providers[name], self.catalog, self.settings
                )
        finally:
            for provider in providers.values():
                await provider.aclose()

    async def aclose(self) -> None:
        if self._running is not None:
            self._running.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._running
