"""A real `volcimage serve` behind the real nginx with the deployment's template."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import Nginx, Server, free_port, process_env


@pytest.fixture
def proxied(tmp_path: Path) -> Iterator[tuple[Server, Nginx]]:
    port = free_port()
    env = process_env(
        tmp_path,
        f"sqlite+aiosqlite:///{tmp_path}/data/database.db",
        APP_PORT=port,
        X_ACCEL_REDIRECT="true",
    )
    server = Server(["serve"], env, tmp_path, port)
    nginx = Nginx(tmp_path, port, tmp_path / "data")
    try:
        server.wait_ready()
        nginx.start()
        yield server, nginx
    finally:
        nginx.stop()
        server.stop()
