"""Carrying out a plan: rows go first, in transactions, then the files no row names any more;
a crash between the two leaves files no row names, which the next run sweeps (never a row
whose file is gone). Then the run is written to the audit log and counted for /metrics."""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypeVar, cast

from sqlalchemy import ColumnElement, delete, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from volcimage.audit.models import AuditEntry
from volcimage.core.config import Settings
from volcimage.core.db import utcnow
from volcimage.core.metrics import CLEANUP_FREED_BYTES, CLEANUP_REMOVED
from volcimage.retention.plan import FileKey, Limits, Plan, TaskFacts, UploadFacts, plan
from volcimage.storage.files import AREAS, Area, Store, StoredFile
from volcimage.tasks.models import FINAL_STATUSES, Image, Task, Upload
from volcimage.tasks.params import references_of

log = logging.getLogger("volcimage.retention")
BATCH = 500  # rows a statement names: short transactions, under SQLite's variable limit
GB = 1024**3
T = TypeVar("T")


def limits_of(settings: Settings) -> Limits:
    """0 means no limit, for either setting."""
    days, size = settings.MAX_HISTORY_DAYS, settings.MAX_STORAGE_GB
    return Limits(
        max_age=timedelta(days=days) if days else None,
        max_bytes=round(size * GB) if size else None,
        keep_favorites=settings.CLEANUP_KEEP_FAVORITES,
    )


@dataclass
class Outcome:
    plan: Plan
    dry_run: bool
    freed_bytes: int  # what was removed (a dry run: what would be)
    removed_files: int
    spared_files: int = 0  # chosen, but a row named it again before it went

    def detail(self) -> dict[str, Any]:
        return {
            "tasks": len(self.plan.tasks),
            "uploads": len(self.plan.uploads),
            "files": self.removed_files,
            "bytes": self.freed_bytes,
        }


async def look(
    session: AsyncSession, store: Store
) -> tuple[Sequence[TaskFacts], Sequence[UploadFacts], dict[FileKey, StoredFile]]:
    """The files first, then the rows: a file written meanwhile is not seen (its row may be),
    so none is taken for an orphan too soon."""
    files = await asyncio.to_thread(_listing, store)
    images: dict[int, list[Any]] = defaultdict(list)
    for row in await session.execute(
        select(Image.task_pk, Image.image_id, Image.file_path, Image.thumbnail_path, Image.favorite)
    ):
        images[row.task_pk].append(row)
    tasks = [
        TaskFacts(
            pk=row.id,
            task_id=row.task_id,
            created_at=row.created_at,
            active=row.status not in FINAL_STATUSES,
            favorite=any(i.favorite for i in images[row.id]),
            files=frozenset(
                key
                for i in images[row.id]
                for key in (("images", i.file_path), ("thumbnails", i.thumbnail_path))
            ),
            image_ids=frozenset(i.image_id for i in images[row.id]),
            references=frozenset(ref["id"] for ref in references_of(cast(Task, row))),
        )
        for row in await session.execute(
            select(Task.id, Task.task_id, Task.created_at, Task.status, Task.params)
        )
    ]
    uploads = [
        UploadFacts(
            pk=row.id,
            upload_id=row.upload_id,
            created_at=row.created_at,
            files=frozenset((("uploads", row.file_path), ("thumbnails", row.thumbnail_path))),
        )
        for row in await session.execute(
            select(
                Upload.id,
                Upload.upload_id,
                Upload.created_at,
                Upload.file_path,
                Upload.thumbnail_path,
            )
        )
    ]
    return tasks, uploads, files


def _listing(store: Store) -> dict[FileKey, StoredFile]:
    return {(area, f.key): f for area in AREAS for f in store.files(area)}


async def clean(
    sessionmaker: async_sessionmaker[AsyncSession],
    store: Store,
    limits: Limits,
    *,
    trigger: str,
    dry_run: bool = False,
) -> Outcome:
    async with sessionmaker() as session:
        chosen = plan(utcnow(), limits, *await look(session, store))
    if dry_run:
        return Outcome(chosen, True, chosen.freed_bytes, len(chosen.files))
    await _delete_rows(sessionmaker, chosen, limits)
    async with sessionmaker() as session:
        named = await _still_named(session, list(chosen.files))
    doomed = {key: f for key, f in chosen.files.items() if key not in named}
    removed = await asyncio.to_thread(_remove_files, store, doomed)
    freed = sum(doomed[key].size for key in removed)
    outcome = Outcome(chosen, False, freed, len(removed), len(chosen.files) - len(removed))
    detail = outcome.detail()
    if not chosen.empty or trigger == "cli":
        async with sessionmaker() as session:
            session.add(
                AuditEntry(
                    actor="retention",
                    client=None,
                    action="cleanup",
                    detail={"trigger": trigger, **detail},
                )
            )
            await session.commit()
    CLEANUP_FREED_BYTES.inc(freed)
    for kind, count in (("tasks", len(chosen.tasks)), ("uploads", len(chosen.uploads))):
        CLEANUP_REMOVED.labels(kind).inc(count)
    CLEANUP_REMOVED.labels("files").inc(len(removed))
    if not chosen.empty:
        log.info(
            "cleanup removed history and files", extra={"trigger": trigger, **outcome.detail()}
        )
    return outcome


async def _delete_rows(
    sessionmaker: async_sessionmaker[AsyncSession], chosen: Plan, limits: Limits
) -> None:
    """Each statement checks again what the plan saw: a task retried or made a favourite
    since stays (its files then stay too: a row names them)."""
    task_pks = [task.pk for task, _ in chosen.tasks]
    for batch in _batches(task_pks):
        conditions: list[ColumnElement[bool]] = [
            Task.id.in_(batch),
            Task.status.in_(FINAL_STATUSES),
        ]
        if limits.keep_favorites:
            conditions.append(~Task.images.any(Image.favorite.is_(True)))
        async with sessionmaker() as session:
            await session.execute(delete(Task).where(*conditions))
            await session.commit()
    for batch in _batches([upload.pk for upload in chosen.uploads]):
        async with sessionmaker() as session:
            await session.execute(delete(Upload).where(Upload.id.in_(batch)))
            await session.commit()


async def _still_named(session: AsyncSession, keys: list[FileKey]) -> set[FileKey]:
    """Of these files, those a row names (kept by the checks above, or a new row)."""
    by_area: dict[Area, list[str]] = defaultdict(list)
    for area, key in keys:
        by_area[area].append(key)
    columns = {
        "images": [Image.file_path],
        "thumbnails": [Image.thumbnail_path, Upload.thumbnail_path],
        "uploads": [Upload.file_path],
    }
    named: set[FileKey] = set()
    for area, area_keys in by_area.items():
        for batch in _batches(area_keys):
            for column in columns[area]:
                found = await session.scalars(select(column).where(column.in_(batch)).distinct())
                named |= {(area, key) for key in found}
    return named


def _remove_files(store: Store, files: dict[FileKey, StoredFile]) -> list[FileKey]:
    """Removes each file unless it was written again since it was listed (reused by a row
    being committed); returns those removed."""
    return [key for key, f in files.items() if store.remove(key[0], key[1], f.modified)]


def _batches(items: list[T]) -> Iterator[list[T]]:
    for start in range(0, len(items), BATCH):
        yield items[start : start + BATCH]


def describe(outcome: Outcome, limits: Limits) -> list[str]:
    """What a run removed (or, dry, would remove), a line each, then the sums."""
    why = {
        "age": f"older than {limits.max_age.days if limits.max_age else 0} days",
        "storage": f"oldest while over {(limits.max_bytes or 0) / GB:g} GB",
    }
    lines = [
        f"task {task.task_id} {task.created_at:%Y-%m-%d} ({why[reason]})"
        for task, reason in outcome.plan.tasks
    ]
    lines += [
        f"upload {u.upload_id} {u.created_at:%Y-%m-%d} (unused, {why['age']})"
        for u in outcome.plan.uploads
    ]
    lines += [
        f"file {area}/{key} {stored.size} bytes"
        + (" (named by no row)" if (area, key) in outcome.plan.orphans else "")
        for (area, key), stored in outcome.plan.files.items()
    ]
    verb = "would remove" if outcome.dry_run else "removed"
    detail = outcome.detail()
    lines.append(
        f"{verb} {detail['tasks']} tasks, {detail['uploads']} uploads, {detail['files']} files: "
        f"{detail['bytes'] / 2**20:.1f} MB of {outcome.plan.used_bytes / 2**20:.1f} MB"
    )
    if outcome.spared_files:
        lines.append(f"kept {outcome.spared_files} files a row named again meanwhile")
    return lines
