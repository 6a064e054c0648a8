"""A VolcEngine emulator: Ark's image generation API (`emulator/ark.py`), faithful enough for the
official SDK, the Visual API (`emulator/visual.py`), and its own controls
(`emulator/controls.py`: latency, faults, counters; `emulator/limits.py`: the account's
limits)."""

from __future__ import annotations

from fastapi import FastAPI

from volcimage.core.config import Settings, get_settings
from volcimage.emulator.ark import add_ark_routes
from volcimage.emulator.controls import EmulatorState, add_control_routes
from volcimage.emulator.limits import add_limit_routes
from volcimage.emulator.visual import DEMO_ACCESS_KEY, DEMO_SECRET_KEY, add_visual_routes


def create_emulator_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    app = FastAPI(title="VolcEngine emulator", docs_url=None, redoc_url=None, openapi_url=None)
    state = EmulatorState(
        settings.EMULATOR_LATENCY_MS,
        settings.EMULATOR_DOWNLOAD_LATENCY_MS,
        settings.EMULATOR_LATENCY_JITTER,
    )
    state.faults.extend(f.strip() for f in settings.EMULATOR_FAULTS.split(",") if f.strip())
    app.state.emulator = state
    keys = {DEMO_ACCESS_KEY: DEMO_SECRET_KEY}
    if settings.VOLC_ACCESS_KEY and settings.VOLC_SECRET_KEY:
        keys[settings.VOLC_ACCESS_KEY.get_secret_value()] = (
            settings.VOLC_SECRET_KEY.get_secret_value()
        )
    app.state.visual = add_visual_routes(app, keys, state.faults)
    add_ark_routes(app, state)
    add_control_routes(app, state)
    add_limit_routes(app, state.limits)
    return app
