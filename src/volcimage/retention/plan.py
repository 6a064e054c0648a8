"""What retention removes, decided from a picture of the rows and files (no I/O here).

Files are shared by content hash (two tasks, or an upload and a task, may name one file), so a
file goes only when no kept row names it. Running or queued tasks, favourites (unless told),
tasks whose images a running or queued task uses as references, and uploads a kept task names
are never chosen.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal

from volcimage.storage.files import Area, StoredFile

FileKey = tuple[Area, str]
Reason = Literal["age", "storage"]
# A file no row names is left this long: its row may be about to be committed
ORPHAN_GRACE = timedelta(hours=1)


@dataclass(frozen=True)
class Limits:
    max_age: timedelta | None  # None: no limit by age
    max_bytes: int | None  # None: no limit by size
    keep_favorites: bool = True


@dataclass(frozen=True)
class TaskFacts:
    pk: int
    task_id: str
    created_at: datetime
    active: bool  # queued, running or waiting to retry
    favorite: bool  # one of its images is a favourite
    files: frozenset[FileKey]
    image_ids: frozenset[str] = frozenset()
    references: frozenset[str] = frozenset()  # upload and image ids it was made from


@dataclass(frozen=True)
class UploadFacts:
    pk: int
    upload_id: str
    created_at: datetime
    files: frozenset[FileKey]


@dataclass
class Plan:
    tasks: list[tuple[TaskFacts, Reason]] = field(default_factory=list)
    uploads: list[UploadFacts] = field(default_factory=list)
    files: dict[FileKey, StoredFile] = field(default_factory=dict)  # to remove, as listed
    orphans: set[FileKey] = field(default_factory=set)  # of `files`: named by no row at all
    used_bytes: int = 0  # before

    @property
    def freed_bytes(self) -> int:
        return sum(f.size for f in self.files.values())

    @property
    def empty(self) -> bool:
        return not (self.tasks or self.uploads or self.files)


def plan(
    now: datetime,
    limits: Limits,
    tasks: Sequence[TaskFacts],
    uploads: Sequence[UploadFacts],
    files: dict[FileKey, StoredFile],
) -> Plan:
    result = Plan(used_bytes=sum(f.size for f in files.values()))
    users: Counter[FileKey] = Counter()
    for row_files in [t.files for t in tasks] + [u.files for u in uploads]:
        users.update(row_files)

    def release(row_files: Iterable[FileKey]) -> None:
        for key in row_files:
            users[key] -= 1
            if users[key] == 0 and key in files:
                result.files[key] = files[key]

    needed = {ref for task in tasks if task.active for ref in task.references}
    candidates = sorted(
        (
            t
            for t in tasks
            if not t.active
            and not (limits.keep_favorites and t.favorite)
            and not (t.image_ids & needed)
        ),
        key=lambda t: (t.created_at, t.pk),
    )
    cutoff = now - limits.max_age if limits.max_age is not None else None
    kept = list(candidates)
    if cutoff is not None:
        kept = []
        for task in candidates:
            if task.created_at < cutoff:
                result.tasks.append((task, "age"))
                release(task.files)
            else:
                kept.append(task)
        gone = {t.pk for t, _ in result.tasks}
        named = {ref for t in tasks if t.pk not in gone for ref in t.references}
        for upload in uploads:
            if upload.created_at < cutoff and upload.upload_id not in named:
                result.uploads.append(upload)
                release(upload.files)

    orphan_before = now.timestamp() - ORPHAN_GRACE.total_seconds()
    for key, stored in files.items():
        if users[key] <= 0 and key not in result.files and stored.modified < orphan_before:
            result.files[key] = stored
            result.orphans.add(key)

    if limits.max_bytes is not None:
        for task in kept:
            if result.used_bytes - result.freed_bytes <= limits.max_bytes:
                break
            result.tasks.append((task, "storage"))
            release(task.files)
    return result
