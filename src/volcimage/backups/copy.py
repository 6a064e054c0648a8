"""`volcimage backup DIR` and `volcimage restore DIR`.

A backup is the database as of one moment (SQLite's online backup API, or `pg_dump` from a
snapshot exported by the transaction that counts the rows), then the image, thumbnail and
upload files, then `manifest.json` (written last: a directory without it is not a backup).
Files are copied after the database is, so every file the copy names is there unless it was
removed in between (the backup says so).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import sqlite3
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy import func, inspect, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, create_async_engine

from volcimage import __version__
from volcimage.core.config import Settings, sqlite_path
from volcimage.core.errors import VolcImageError
from volcimage.core.migrate import alembic_config, migrate, revision_of
from volcimage.storage.files import AREAS, TEMP_PREFIX, Area
from volcimage.tasks.models import Image, Task, Upload

FORMAT = 1
MANIFEST = "manifest.json"
SQLITE_COPY = "database.db"
PG_DUMP = "database.pgdump"
COUNTED = {"tasks": Task, "images": Image, "uploads": Upload}
PG_DUMP_HELP = "install the PostgreSQL client tools (apt install postgresql-client)"


async def back_up(settings: Settings, target: Path) -> list[str]:
    await asyncio.to_thread(_empty_directory, target)
    if settings.is_sqlite:
        facts = await _copy_sqlite(settings, target / SQLITE_COPY)
    else:
        facts = await _dump_postgres(settings, target / PG_DUMP)
    lines = [f"database: {_counts(facts['counts'])}"]
    roots = _roots(settings)
    if roots is None:
        lines.append("files: in the S3 bucket, not copied (back the bucket up with its own tools)")
        copied: dict[str, int] = {}
        missing: list[str] = []
    else:
        copied = {
            area: await asyncio.to_thread(_copy_tree, root, target / area)
            for area, root in roots.items()
        }
        missing = [f"{a}/{k}" for a, k in facts.pop("named") if not (target / a / k).is_file()]
        lines.append("files: " + ", ".join(f"{n} {area}" for area, n in copied.items()))
        lines += [f"missing: {name} (removed while the backup ran)" for name in missing]
    manifest = {
        "format": FORMAT,
        "volcimage": __version__,
        "revision": facts["revision"],
        "database": "sqlite" if settings.is_sqlite else "postgresql",
        "created_at": datetime.now(UTC).isoformat(),
        "counts": facts["counts"],
        "files": copied,
        "missing": missing,
    }
    (target / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    lines.append(f"backup written to {target}")
    return lines


async def restore(settings: Settings, source: Path, *, force: bool) -> list[str]:
    manifest = _manifest(source)
    kind = "sqlite" if settings.is_sqlite else "postgresql"
    if manifest["database"] != kind:
        raise VolcImageError(
            f"the backup is of {manifest['database']}; DATABASE_URL is {kind} "
            "(restore into the same kind of database)"
        )
    _known_revision(settings, manifest["revision"])
    await asyncio.to_thread(settings.ensure_dirs)
    roots = _roots(settings)
    held = await _held(settings, roots)
    if held and not force:
        raise VolcImageError(
            "the target is not empty: "
            + "; ".join(held)
            + ". Stop the studio and run again with --force to overwrite them"
        )
    if settings.is_sqlite:
        await asyncio.to_thread(_sqlite_backup, source / SQLITE_COPY, _sqlite_file(settings))
    else:
        await asyncio.to_thread(
            _pg_tool,
            settings,
            "pg_restore",
            "--clean",
            "--if-exists",
            "--no-owner",
            "--single-transaction",
            str(source / PG_DUMP),
        )
    lines = [f"database restored: {_counts(manifest['counts'])}"]
    if manifest["files"] and roots is None:
        lines.append("files: not restored (STORAGE_BACKEND=s3: copy them into the bucket)")
    elif roots is not None:
        copied = [
            await asyncio.to_thread(_copy_tree, source / area, root) for area, root in roots.items()
        ]
        lines.append(f"files restored: {sum(copied)}")
    await asyncio.to_thread(migrate, settings)
    lines.append(f"restored from {source} (made {manifest['created_at']})")
    return lines


async def _copy_sqlite(settings: Settings, copy: Path) -> dict[str, Any]:
    source = await asyncio.to_thread(_existing, _sqlite_file(settings))
    await asyncio.to_thread(_sqlite_backup, source, copy)
    engine = create_async_engine(f"sqlite+aiosqlite:///{copy}")
    try:
        async with engine.connect() as conn:
            return await _facts(conn)
    finally:
        await engine.dispose()


async def _dump_postgres(settings: Settings, dump: Path) -> dict[str, Any]:
    """Counts and dump from one snapshot: the counting transaction exports it to pg_dump."""
    engine = create_async_engine(settings.DATABASE_URL)
    try:
        async with engine.connect() as conn:
            conn = await conn.execution_options(isolation_level="REPEATABLE READ")
            snapshot = await conn.scalar(text("SELECT pg_export_snapshot()"))
            facts = await _facts(conn)
            await asyncio.to_thread(
                _pg_tool,
                settings,
                "pg_dump",
                "--format=custom",
                "--no-owner",
                f"--snapshot={snapshot}",
                f"--file={dump}",
            )
            return facts
    finally:
        await engine.dispose()


async def _facts(conn: AsyncConnection) -> dict[str, Any]:
    counts = {
        name: int(await conn.scalar(select(func.count()).select_from(model)) or 0)
        for name, model in COUNTED.items()
    }
    named: set[tuple[str, str]] = set()
    for row in await conn.execute(select(Image.file_path, Image.thumbnail_path)):
        named |= {("images", row.file_path), ("thumbnails", row.thumbnail_path)}
    for row in await conn.execute(select(Upload.file_path, Upload.thumbnail_path)):
        named |= {("uploads", row.file_path), ("thumbnails", row.thumbnail_path)}
    revision = await revision_of(conn)
    return {"counts": counts, "named": sorted(named), "revision": revision}


async def _held(settings: Settings, roots: dict[Area, Path] | None) -> list[str]:
    """What the target holds that a restore would overwrite, a phrase each."""
    held = []
    engine = create_async_engine(settings.DATABASE_URL)
    try:
        async with engine.connect() as conn:
            tables = await conn.run_sync(lambda sync: inspect(sync).get_table_names())
            if "tasks" in tables:
                counts = (await _facts(conn))["counts"]
                if any(counts.values()):
                    held.append(f"the database holds {_counts(counts)}")
    finally:
        await engine.dispose()
    for root in (roots or {}).values():
        found = sum(1 for _ in _files(root))
        if found:
            held.append(f"{root} holds {found} files")
    return held


def _empty_directory(target: Path) -> None:
    if target.exists() and any(target.iterdir()):
        raise VolcImageError(f"{target} is not empty: back up into a new or empty directory")
    target.mkdir(parents=True, exist_ok=True)


def _manifest(source: Path) -> dict[str, Any]:
    try:
        manifest: dict[str, Any] = json.loads((source / MANIFEST).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise VolcImageError(f"{source} has no {MANIFEST}: not a volcimage backup") from None
    if manifest.get("format") != FORMAT:
        raise VolcImageError(f"{source} is a backup of format {manifest.get('format')}")
    return manifest


def _known_revision(settings: Settings, revision: str) -> None:
    try:
        ScriptDirectory.from_config(alembic_config(settings)).get_revision(revision)
    except CommandError:
        raise VolcImageError(
            f"the backup's schema ({revision}) is newer than this volcimage knows: upgrade first"
        ) from None


def _roots(settings: Settings) -> dict[Area, Path] | None:
    """Where each area's files are on the local disk; None: in an S3 bucket."""
    if settings.STORAGE_BACKEND != "local":
        return None
    roots = (settings.IMAGE_DIR, settings.THUMBNAIL_DIR, settings.upload_dir)
    return dict(zip(AREAS, roots, strict=True))


def _sqlite_file(settings: Settings) -> Path:
    path = sqlite_path(settings.DATABASE_URL)
    if path is None:
        raise VolcImageError("an in-memory database has nothing to back up or restore")
    return path


def _existing(path: Path) -> Path:
    if not path.is_file():
        raise VolcImageError(f"no database at {path} (DATABASE_URL)")
    return path


def _sqlite_backup(source: Path, target: Path) -> None:
    """SQLite's online backup: a consistent copy while others read and write."""
    with (
        contextlib.closing(sqlite3.connect(source)) as src,
        contextlib.closing(sqlite3.connect(target)) as dst,
    ):
        src.backup(dst)


def _pg_tool(settings: Settings, tool: str, *args: str) -> None:
    """pg_dump or pg_restore on DATABASE_URL; the password goes by environment, not argv."""
    if shutil.which(tool) is None:
        raise VolcImageError(f"{tool} is not on PATH: {PG_DUMP_HELP}")
    url = make_url(settings.DATABASE_URL)
    env = {**os.environ, "PGDATABASE": url.database or ""}
    for name, value in (
        ("PGHOST", url.host),
        ("PGPORT", url.port),
        ("PGUSER", url.username),
        ("PGPASSWORD", url.password),
    ):
        if value is not None:
            env[name] = str(value)
    if tool == "pg_restore":
        args = (*args, f"--dbname={url.database}")
    done = subprocess.run([tool, *args], env=env, capture_output=True, text=True, check=False)
    if done.returncode:
        raise VolcImageError(f"{tool} failed: {done.stderr.strip()}")


def _copy_tree(source: Path, target: Path) -> int:
    """Copies every file (times kept: retention reads them), returns how many."""
    count = 0
    for path in _files(source):
        copy = target / path.relative_to(source)
        copy.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):  # removed meanwhile (`missing` says)
            shutil.copy2(path, copy)
            count += 1
    return count


def _files(root: Path) -> Iterator[Path]:
    return (p for p in root.rglob("*") if p.is_file() and not p.name.startswith(TEMP_PREFIX))


def _counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{n} {name}" for name, n in counts.items())
