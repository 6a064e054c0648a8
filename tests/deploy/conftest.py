"""A real `volcimage serve` behind the real nginx with the deployment's template."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import Nginx, Server, behind_nginx


@pytest.fixture
def proxied(tmp_path: Path) -> Iterator[tuple[Server, Nginx]]:
    with behind_nginx(tmp_path) as pair:
        yield pair
