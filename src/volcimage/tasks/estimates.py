"""How long a task takes here, learned from this deployment's own recent runs of the model (and
of its size class), so the page can say "12 s / ~20 s" instead of sitting at 0 %.

The median of the newest clean runs: a retried or re-claimed run also counts waiting, and a
median is not thrown by one slow call. A constant is only the guess for a model never run here.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from volcimage.tasks.models import Task, TaskStatus

SECONDS_PER_IMAGE = 8  # the guess for a model with no run to learn from
SAMPLES = 20  # runs per model the median is taken of
RECENT_TASKS = 2000  # only the newest tasks (by id) are looked at: a bounded scan, no new index


@dataclass(frozen=True)
class Run:
    width: int
    height: int
    num_images: int
    group: bool
    seconds: float


def size_class(width: int, height: int) -> int:
    """1K, 2K and 4K-like outputs take different times; sizes within a class about the same."""
    pixels = width * height
    return 0 if pixels <= 1_500_000 else 1 if pixels <= 5_000_000 else 2


def _units(num_images: int, group: bool) -> int:
    """What the time grows with: a group streams its images one after another, while the
    images of any other task are called for side by side."""
    return num_images if group else 1


def estimate(runs: list[Run], width: int, height: int, num_images: int, group: bool) -> int:
    """Seconds from start to finish of a task like this one, judged from `runs` of its model."""
    wanted = size_class(width, height)
    alike = [r for r in runs if size_class(r.width, r.height) == wanted] or runs
    if not alike:
        return SECONDS_PER_IMAGE * num_images
    each = statistics.median(r.seconds / _units(r.num_images, r.group) for r in alike)
    return max(1, round(each * _units(num_images, group)))


def recent_runs(session: Session, models: Collection[str]) -> dict[str, list[Run]]:
    """The newest clean runs (completed in one attempt, no error) of each model, newest first;
    each model's read at most every CACHE_SECONDS per database, as every read of a task under
    way asks (a page of history, each event) and the answer moves slowly."""
    database = str(session.connection().engine.url)
    now = time.monotonic()
    stale = [m for m in models if _CACHE.get((database, m), (0.0, []))[0] <= now]
    if stale:
        found = _query(session, stale)
        for model in stale:
            _CACHE[(database, model)] = (now + CACHE_SECONDS, found.get(model, []))
    return {m: _CACHE[(database, m)][1] for m in models if (database, m) in _CACHE}


CACHE_SECONDS = 30.0
_CACHE: dict[tuple[str, str], tuple[float, list[Run]]] = {}


def _query(session: Session, models: Collection[str]) -> dict[str, list[Run]]:
    newest = select(func.max(Task.id)).scalar_subquery()
    ranked = (
        select(
            Task.model,
            Task.width,
            Task.height,
            Task.num_images,
            Task.params,
            Task.started_at,
            Task.completed_at,
            func.row_number().over(partition_by=Task.model, order_by=Task.id.desc()).label("rank"),
        )
        .where(
            Task.id > newest - RECENT_TASKS,
            Task.model.in_(models),
            Task.status == TaskStatus.COMPLETED,
            Task.error_code.is_(None),
            Task.retry_count == 0,
            Task.attempts == 1,
            Task.started_at.is_not(None),
            Task.completed_at.is_not(None),
        )
        .subquery()
    )
    found: dict[str, list[Run]] = {}
    query = select(ranked).where(ranked.c.rank <= SAMPLES).order_by(ranked.c.rank)
    for row in session.connection().execute(query):
        found.setdefault(row.model, []).append(_run(row))
    return found


def _run(row: Any) -> Run:
    seconds = max(0.0, (row.completed_at - row.started_at).total_seconds())
    group = bool((row.params or {}).get("group"))
    return Run(row.width, row.height, row.num_images, group, seconds)


def for_task(task: Any, runs: dict[str, list[Run]]) -> int:
    """The estimate for a task (a row or a Task) from `recent_runs` of its model."""
    group = bool((task.params or {}).get("group"))
    return estimate(runs.get(task.model, []), task.width, task.height, task.num_images, group)


def queued_seconds(session: Session, task: Task, ahead: int, concurrency: int) -> int:
    """Seconds until a task just queued is done: its own run, after the rounds of tasks that
    are ahead of it (`concurrency` at a time), each guessed to take as long as its own."""
    run = for_task(task, recent_runs(session, {task.model}))
    return run * (1 + max(0, ahead) // concurrency)
