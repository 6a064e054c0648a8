"""Builds the provider for each upstream from settings: real, or the built-in emulator (demo)."""

from __future__ import annotations

from typing import Any

import httpx

from volcimage.config import Settings
from volcimage.providers.ark import ArkProvider
from volcimage.providers.base import Provider

EMULATOR_BASE = "http://emulator"


def build_providers(settings: Settings, emulator: Any = None) -> dict[str, Provider]:
    """`emulator`: the demo-mode emulator ASGI app to share (one is made when not given)."""
    if settings.ark_mode == "real":
        key = settings.ARK_API_KEY.get_secret_value() if settings.ARK_API_KEY else ""
        ark = ArkProvider(
            api_key=key,
            base_url=settings.ARK_BASE_URL,
            timeout=settings.REQUEST_TIMEOUT,
            response_format=settings.ARK_RESPONSE_FORMAT,
        )
    else:
        ark = ArkProvider(
            api_key="demo",
            base_url=f"{EMULATOR_BASE}/api/v3",
            timeout=settings.REQUEST_TIMEOUT,
            response_format=settings.ARK_RESPONSE_FORMAT,
            http_client=emulator_client(settings, emulator),
        )
    return {"ark": ark}


def emulator_client(settings: Settings, emulator: Any = None) -> httpx.AsyncClient:
    """An HTTP client wired to the in-process emulator: demo runs the real client code path."""
    if emulator is None:
        from volcimage.emulator.app import create_emulator_app

        emulator = create_emulator_app(settings)
    transport = httpx.ASGITransport(app=emulator)
    return httpx.AsyncClient(
        transport=transport, base_url=EMULATOR_BASE, timeout=settings.REQUEST_TIMEOUT
    )
