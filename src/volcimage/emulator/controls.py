"""The emulator's own state and controls, not part of the real APIs: latency, queued faults,
account limits (`emulator/limits.py`) and call counters (`/_emulator/*`), and the per-request
header `X-Emulator-Latency-Ms`."""

from __future__ import annotations

import asyncio
import random
import uuid
from collections import OrderedDict
from dataclasses import dataclass, field

from fastapi import FastAPI, Request

from volcimage.emulator.limits import AccountLimits

KEPT_FILES = 500


@dataclass
class EmulatorState:
    latency_ms: int
    download_latency_ms: int
    jitter: float = 0.0
    faults: list[str] = field(default_factory=list)
    files: OrderedDict[str, bytes] = field(default_factory=OrderedDict)
    truncate_once: set[str] = field(default_factory=set)
    generation_calls: int = 0
    generation_failures: int = 0
    images_generated: int = 0
    downloads: int = 0
    in_flight: int = 0
    max_in_flight: int = 0
    limits: AccountLimits = field(default_factory=AccountLimits)
    visual_latency: int | None = None  # ms; None: latency_ms, as Ark's

    @property
    def visual_latency_ms(self) -> int:
        return self.latency_ms if self.visual_latency is None else self.visual_latency

    def keep(self, data: bytes) -> str:
        name = f"{uuid.uuid4().hex}.jpeg"
        self.files[name] = data
        while len(self.files) > KEPT_FILES:
            self.files.popitem(last=False)
        return name


async def delay(request: Request, state: EmulatorState, median_ms: int) -> None:
    """A header's exact latency, or one drawn around the median: real calls vary, with a tail."""
    value = request.headers.get("x-emulator-latency-ms")
    if value and value.isdigit():
        ms = float(value)
    else:
        ms = median_ms * random.lognormvariate(0, state.jitter) if state.jitter else median_ms
    if ms:
        await asyncio.sleep(ms / 1000)


def add_control_routes(app: FastAPI, state: EmulatorState) -> None:
    @app.get("/_emulator/stats")
    async def stats() -> dict[str, int]:
        return {
            "generation_calls": state.generation_calls,
            "generation_failures": state.generation_failures,
            "images_generated": state.images_generated,
            "downloads": state.downloads,
            "max_in_flight": state.max_in_flight,
        }

    @app.post("/_emulator/faults")
    async def add_faults(request: Request) -> dict[str, list[str]]:
        state.faults.extend((await request.json()).get("faults", []))
        return {"faults": state.faults}

    @app.post("/_emulator/latency")
    async def set_latency(request: Request) -> dict[str, int]:
        """Changes the latency of generations and downloads, in milliseconds, from now on;
        `visual_latency_ms` the Visual API's alone (null: the same as Ark's)."""
        body = await request.json()
        if "visual_latency_ms" in body:
            given = body["visual_latency_ms"]
            state.visual_latency = None if given is None else int(given)
        state.latency_ms = int(body.get("latency_ms", state.latency_ms))
        state.download_latency_ms = int(body.get("download_latency_ms", state.download_latency_ms))
        state.jitter = float(body.get("jitter", state.jitter))
        return {"latency_ms": state.latency_ms, "download_latency_ms": state.download_latency_ms}

    @app.post("/_emulator/reset")
    async def reset() -> dict[str, bool]:
        state.faults.clear()
        state.generation_calls = state.generation_failures = 0
        state.images_generated = state.downloads = 0
        return {"ok": True}
