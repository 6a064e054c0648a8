"""`volcimage doctor`: can this deployment work? The database, the storage and each upstream's
credentials, one line each. No check makes an image: the credentials are proved by requests
the upstream authenticates and then refuses or answers for free (providers' `probe`)."""

from __future__ import annotations

import asyncio
import shutil
from dataclasses import dataclass

from sqlalchemy.exc import DBAPIError

from volcimage.catalog.models import load_catalog
from volcimage.core.config import Settings
from volcimage.core.db import create_engine, create_sessionmaker
from volcimage.core.migrate import SCHEMA_HEAD, revision_of
from volcimage.providers.registry import build_providers
from volcimage.storage import build_store
from volcimage.system import health
from volcimage.system.probes import prove

TITLES = {"ark": "Ark API", "visual": "Visual API"}


@dataclass(frozen=True)
class Check:
    name: str
    detail: str
    failed: bool = False


async def examine(settings: Settings) -> list[Check]:
    checks = [await _database(settings), await _storage(settings)]
    catalog = load_catalog()
    providers = build_providers(settings)
    try:
        for name, state in settings.provider_states().items():
            if state == "demo":
                checks.append(Check(TITLES[name], "demo mode: the built-in emulator, no key"))
            elif state == "not_configured":
                checks.append(Check(TITLES[name], _missing(name), failed=True))
            else:
                probe = await prove(name, providers[name], catalog, settings)
                checks.append(Check(TITLES[name], probe.detail, failed=not probe.connected))
    finally:
        for provider in providers.values():
            await provider.aclose()
    return checks


async def _database(settings: Settings) -> Check:
    engine = create_engine(settings)
    try:
        async with create_sessionmaker(engine)() as session:
            answer = await health.database(session, settings)
            if answer != "ok":
                hint = ": `volcimage migrate` makes it" if "missing" in answer else ""
                return Check("database", answer.removeprefix("error: ") + hint, failed=True)
            try:
                current = await revision_of(session)
            except DBAPIError:
                current = None
            finally:
                await session.rollback()
    finally:
        await engine.dispose()
    if current != SCHEMA_HEAD:
        found = f"at revision {current}" if current else "not migrated"
        needs = f"the code needs {SCHEMA_HEAD}: run `volcimage migrate`"
        return Check("database", f"{found}, {needs}", True)
    kind = "SQLite" if settings.is_sqlite else "PostgreSQL"
    return Check("database", f"{kind} answers and takes writes, at revision {SCHEMA_HEAD}")


async def _storage(settings: Settings) -> Check:
    try:
        await asyncio.to_thread(settings.ensure_dirs)
        store = await asyncio.to_thread(build_store, settings)
    except Exception as error:  # a bucket that cannot be reached or made, a directory refused
        return Check("storage", f"cannot be opened ({type(error).__name__}: {error})", True)
    answer = await health.storage(store, settings)
    if answer != "ok":
        return Check("storage", answer.removeprefix("error: "), failed=True)
    if settings.STORAGE_BACKEND == "s3":
        return Check("storage", f"bucket {settings.S3_BUCKET} reachable")
    free = await asyncio.to_thread(shutil.disk_usage, settings.IMAGE_DIR)
    return Check("storage", f"writable, {free.free / 2**30:.1f} GB free")


def _missing(name: str) -> str:
    if name == "ark":
        return "ARK_API_KEY is not set, but Ark calls go to the real API"
    return (
        "VOLC_ACCESS_KEY and VOLC_SECRET_KEY are not both set, but Visual calls go to the real API"
    )


def report(checks: list[Check]) -> tuple[str, int]:
    """The lines to print and the exit status (1 when any check failed)."""
    width = max(len(c.name) for c in checks)
    lines = [f"{'FAIL' if c.failed else 'ok':4}  {c.name:{width}}  {c.detail}" for c in checks]
    failed = [c.name for c in checks if c.failed]
    if failed:
        lines.append(f"volcimage doctor: {len(failed)} failed: {', '.join(failed)}")
    return "\n".join(lines), 1 if failed else 0
