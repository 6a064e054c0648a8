"""Builds the provider for each upstream from settings: real, or the built-in emulator (demo)."""

from __future__ import annotations

from typing import Any

import httpx

from volcimage.core.config import Settings
from volcimage.core.errors import hide_secrets
from volcimage.providers.ark import ArkProvider
from volcimage.providers.base import Provider
from volcimage.providers.local import StreamingASGITransport
from volcimage.providers.visual import VisualProvider

EMULATOR_BASE = "http://emulator"


def build_providers(settings: Settings, emulator: Any = None) -> dict[str, Provider]:
    """`emulator`: the demo-mode emulator ASGI app to share (one is made when not given)."""
    hide_secrets(settings.secrets())  # from every upstream text, should one echo a key
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
    return {"ark": ark, "visual": _visual(settings, emulator)}


def _visual(settings: Settings, emulator: Any) -> VisualProvider:
    if settings.visual_mode == "real":
        ak, sk = settings.VOLC_ACCESS_KEY, settings.VOLC_SECRET_KEY
        access_key = ak.get_secret_value() if ak else ""
        secret_key = sk.get_secret_value() if sk else ""
        base_url, client = settings.VOLC_BASE_URL, None
    else:
        from volcimage.emulator.visual import DEMO_ACCESS_KEY, DEMO_SECRET_KEY

        access_key, secret_key = DEMO_ACCESS_KEY, DEMO_SECRET_KEY
        base_url, client = f"{EMULATOR_BASE}/visual", emulator_client(settings, emulator)
    return VisualProvider(
        access_key=access_key,
        secret_key=secret_key,
        base_url=base_url,
        region=settings.VOLC_REGION,
        service=settings.VOLC_SERVICE,
        timeout=settings.REQUEST_TIMEOUT,
        http_client=client,
    )


def emulator_client(settings: Settings, emulator: Any = None) -> httpx.AsyncClient:
    """An HTTP client wired to the in-process emulator: demo runs the real client code path."""
    if emulator is None:
        from volcimage.emulator.app import create_emulator_app

        emulator = create_emulator_app(settings)
    transport = StreamingASGITransport(emulator)
    return httpx.AsyncClient(
        transport=transport, base_url=EMULATOR_BASE, timeout=settings.REQUEST_TIMEOUT
    )
