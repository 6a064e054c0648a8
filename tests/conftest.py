"""Shared fixtures: settings on a throwaway database (SQLite file or a PostgreSQL database, each a
copy of one migrated once per test process; empty for tests marked `fresh_database`), the app in
process, and helpers that start real servers on free local ports."""

from __future__ import annotations

import asyncio
import os
import shutil
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from tests.support import PG_ADMIN_DSN, Studio, process_env
from volcimage.app import create_app
from volcimage.core.config import Settings, load_settings
from volcimage.core.migrate import migrate

BACKENDS = os.environ.get("VOLCIMAGE_TEST_BACKENDS", "sqlite,postgresql").split(",")


# The longest tests (a minute, half a minute: one process doing the work while the rest wait)
# go first, so no worker is left running one at the end while the other has nothing to do.
LONGEST_FIRST = ("test_load.py", "test_crash_stress.py", "test_scale_out.py", "test_servers.py")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    def rank(item: pytest.Item) -> int:
        name = item.path.name
        return LONGEST_FIRST.index(name) if name in LONGEST_FIRST else len(LONGEST_FIRST)

    items.sort(key=rank)  # stable: the rest keep their order


async def _pg_admin(sql: str) -> None:
    conn = await asyncpg.connect(PG_ADMIN_DSN)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def _pg_url(name: str) -> str:
    host = PG_ADMIN_DSN.split("@", 1)[1].rsplit("/", 1)[0]
    user = PG_ADMIN_DSN.split("//", 1)[1].split("@", 1)[0]
    return f"postgresql+asyncpg://{user}@{host}/{name}"


@pytest.fixture(scope="session")
def migrated_templates(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """A SQLite file and a PostgreSQL database migrated to head once for this test process:
    a test's database is a copy (migrating each new one cost ~0.3 s of a test's setup)."""
    root = tmp_path_factory.mktemp("template")
    sqlite_file = root / "data" / "database.db"
    migrate(
        load_settings(_env_file=None, **process_env(root, f"sqlite+aiosqlite:///{sqlite_file}"))
    )
    templates = {"sqlite": str(sqlite_file)}
    name = f"volcimage_tpl_{uuid.uuid4().hex[:10]}"
    if "postgresql" in BACKENDS:
        asyncio.run(_pg_admin(f'CREATE DATABASE "{name}"'))
        migrate(load_settings(_env_file=None, **process_env(root, _pg_url(name))))
        templates["postgresql"] = name
    yield templates
    if "postgresql" in templates:
        asyncio.run(_pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
def pg_database(request: pytest.FixtureRequest) -> Iterator[str]:
    """A new PostgreSQL database on the local server, at the schema's head (empty for a test
    marked `fresh_database`); dropped afterwards."""
    name = f"volcimage_t_{uuid.uuid4().hex[:10]}"
    if request.node.get_closest_marker("fresh_database") is not None:
        asyncio.run(_pg_admin(f'CREATE DATABASE "{name}"'))
    else:
        template = request.getfixturevalue("migrated_templates")["postgresql"]
        asyncio.run(_pg_admin(f'CREATE DATABASE "{name}" TEMPLATE "{template}"'))
    yield _pg_url(name)
    asyncio.run(_pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Every test of the database runs on each backend; a module or test marked
    `one_database` (the database is not its point) runs on the first only."""
    if "database_url" not in metafunc.fixturenames:
        return
    for mark in metafunc.definition.iter_markers("parametrize"):
        if "database_url" in mark.args[0]:
            return  # the test names its own backends
    one = metafunc.definition.get_closest_marker("one_database") is not None
    metafunc.parametrize("database_url", BACKENDS[:1] if one else BACKENDS, indirect=True)


@pytest.fixture
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "postgresql":
        return str(request.getfixturevalue("pg_database"))
    path = tmp_path / "data" / "database.db"
    if request.node.get_closest_marker("fresh_database") is None:
        path.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(request.getfixturevalue("migrated_templates")["sqlite"], path)
    return f"sqlite+aiosqlite:///{path}"


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    env = process_env(tmp_path, database_url)
    env["TASK_LEASE_SECONDS"] = "3"
    return load_settings(_env_file=None, **env)


@pytest.fixture
async def app_client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """The app in process, lifespan and runner included, behind an httpx client."""
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            yield client


@pytest.fixture
def make_studio(tmp_path: Path, database_url: str) -> Any:
    """`async with make_studio(SETTING=value) as studio:` — a fresh app with these settings."""
    import contextlib

    @contextlib.asynccontextmanager
    async def factory(**overrides: Any) -> AsyncIterator[Studio]:
        env = process_env(tmp_path, database_url, TASK_LEASE_SECONDS=3, **overrides)
        settings = load_settings(_env_file=None, **env)
        app = create_app(settings)
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
                yield Studio(app, client, settings)

    return factory
