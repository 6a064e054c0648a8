"""Browser tests: Python Playwright driving Debian's Chromium against a real `volcimage serve`
in demo mode (SQLite, built-in emulator) behind the real nginx with the deployment's template."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support import behind_nginx

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args: dict[str, Any]) -> dict[str, Any]:
    return {**browser_type_launch_args, "executable_path": CHROMIUM, "args": CHROMIUM_ARGS}


@pytest.fixture(scope="session")
def browser_context_args(browser_context_args: dict[str, Any]) -> dict[str, Any]:
    return {**browser_context_args, "accept_downloads": True, "locale": "zh-CN"}


@pytest.fixture(scope="session")
def studio_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One server per test process; each test makes its own tasks and looks only at those."""
    root: Path = tmp_path_factory.mktemp("studio")
    with behind_nginx(root, EMULATOR_LATENCY_MS=150, LOG_FORMAT="json") as (_server, nginx):
        yield nginx.url


@pytest.fixture
def emulator(studio_url: str) -> Iterator[httpx.Client]:
    """The emulator's control endpoints; latency is put back after the test."""
    with httpx.Client(base_url=f"{studio_url}/emulator/_emulator") as client:
        yield client
        client.post("/latency", json={"latency_ms": 150})
