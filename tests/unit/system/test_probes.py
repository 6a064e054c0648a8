"""The probe behind /system/info: one at a time, kept a while (a refusal for less), and the
setting that failed named."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from volcimage.catalog.models import load_catalog
from volcimage.core.config import load_settings
from volcimage.core.errors import UpstreamError
from volcimage.system import probes
from volcimage.system.probes import Probes


class CountingProvider:
    def __init__(self, refuse: bool) -> None:
        self.refuse = refuse
        self.probes = 0

    async def probe(self, upstream_model: str) -> str:
        self.probes += 1
        await asyncio.sleep(0)
        if self.refuse:
            raise UpstreamError(
                "no", upstream_code="AuthenticationError", retryable=False, http_status=401
            )
        return "key accepted"

    async def aclose(self) -> None:
        return None


@pytest.fixture
def ark(monkeypatch: pytest.MonkeyPatch) -> CountingProvider:
    provider = CountingProvider(refuse=False)
    monkeypatch.setattr(probes, "build_providers", lambda *_: {"ark": provider})
    return provider


def real_ark() -> Any:
    return load_settings(_env_file=None, ARK_API_KEY="k", VOLC_ACCESS_KEY="", VOLC_SECRET_KEY="")


async def test_pages_asking_at_once_share_one_probe_and_then_its_answer(
    ark: CountingProvider,
) -> None:
    checker = Probes(real_ark(), load_catalog())
    answers = await asyncio.gather(*(checker.results() for _ in range(5)))
    assert ark.probes == 1
    assert all(a["ark"].connected and a["ark"].detail == "key accepted" for a in answers)
    await checker.results()
    assert ark.probes == 1  # kept


async def test_a_refusal_names_the_setting_and_is_asked_again_sooner(
    ark: CountingProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    ark.refuse = True
    checker = Probes(real_ark(), load_catalog())
    found = (await checker.results())["ark"]
    assert not found.connected and found.detail == "ARK_API_KEY was refused (AuthenticationError)"
    # kept KEEP_BAD seconds (on round times: checked_at + 30 - checked_at may be 29.99…)
    bad = probes.Probe(False, found.detail, 100.0)
    assert bad.fresh(100.0 + probes.KEEP_BAD - 1) and not bad.fresh(100.0 + probes.KEEP_BAD)
    good = probes.Probe(True, "", 0.0)
    assert good.fresh(probes.KEEP_BAD) and not good.fresh(probes.KEEP_GOOD)


async def test_demo_providers_are_not_probed(ark: CountingProvider) -> None:
    checker = Probes(load_settings(_env_file=None), load_catalog())
    assert await checker.results() == {} and ark.probes == 0
    await checker.aclose()
