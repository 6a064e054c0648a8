"""The upstream account's limits, held by every worker together: calls in flight per upstream
(ARK_CONCURRENCY, VISUAL_CONCURRENCY), images a minute per model (ARK_IMAGES_PER_MINUTE,
MODEL_IMAGES_PER_MINUTE), and a model's pause after the upstream refused it for a limit.

A claim (`lease.Lease.claim`) reads the usage in its locked step and takes the queued tasks
that fit, in queue order. A task that does not fit holds back the later tasks of its own
limit (first come, first served within it, so a big task is not starved by small ones) and
never another model's: a saturated model does not block the queue. The arithmetic here is
pure; `read_usage` and `pause` are its database side.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql import Executable

from volcimage.catalog.models import Catalog, ModelInfo
from volcimage.core.config import Settings
from volcimage.tasks.models import ModelPause, Task, TaskStatus

WINDOW = timedelta(minutes=1)  # Ark's limit is images per minute (IPM)
CANDIDATES = 500  # queued tasks a claim looks at, past those of models that can take none


def slots_of(num_images: int, one_call: bool) -> int:
    """A task's paid calls: one per image, or one for a group or a layer decomposition."""
    return 1 if one_call else num_images


def call_timeout(settings: Settings, model: ModelInfo, images: int) -> float:
    """Seconds one call may take: the model's own (MODEL_REQUEST_TIMEOUTS, else the
    catalog's, else REQUEST_TIMEOUT) per image, times the images a group call makes."""
    per_image = settings.model_request_timeouts.get(model.id)
    per_image = per_image or model.request_timeout or settings.REQUEST_TIMEOUT
    return per_image * max(1, images)


@dataclass(frozen=True)
class Load:
    """A task as the limits see it."""

    pk: int
    model: str
    images: int
    slots: int


@dataclass
class Usage:
    """What is taken now: tasks under way, calls in flight per upstream, images reserved in
    the last minute per model, and the models paused."""

    under_way: int = 0
    calls: Counter[str] = field(default_factory=Counter)
    images: Counter[str] = field(default_factory=Counter)
    paused: set[str] = field(default_factory=set)


class Limits:
    def __init__(self, settings: Settings, catalog: Catalog) -> None:
        self._provider = {m.id: m.provider for m in catalog.models}
        ark = {m.id: settings.ARK_IMAGES_PER_MINUTE for m in catalog.models if m.provider == "ark"}
        self._per_minute = ark | settings.model_images_per_minute
        self._concurrency = {"ark": settings.ARK_CONCURRENCY, "visual": settings.VISUAL_CONCURRENCY}

    def provider(self, model: str) -> str:
        return self._provider.get(model, "")

    def concurrency(self, provider: str) -> int:
        """Calls in flight the upstream allows; 0: no limit of its own."""
        return self._concurrency.get(provider, 0)

    def images_per_minute(self, model: str) -> int:
        """0: no limit."""
        return self._per_minute.get(model, 0)

    def calls_at_once(self, model: str, slots: int) -> int:
        """The calls a task makes at once: all its slots, or as many as its upstream allows
        (the rest follow one by one), so a task is never too big to be claimed."""
        cap = self.concurrency(self.provider(model))
        return min(slots, cap) if cap else slots

    def reserved(self, model: str, images: int) -> int:
        """The images a claim reserves of the model's minute: a group of n reserves n. A task
        bigger than the whole minute takes all of it, or it would never run."""
        per_minute = self.images_per_minute(model)
        return min(images, per_minute) if per_minute else 0

    def count_running(self, usage: Usage, tasks: Iterable[Load]) -> None:
        for task in tasks:
            usage.under_way += 1
            usage.calls[self.provider(task.model)] += self.calls_at_once(task.model, task.slots)

    def count_claimed(self, usage: Usage, claims: Iterable[tuple[str, int, int]]) -> None:
        """Claims within the last minute, as (model, images, tasks): their reservations
        still stand."""
        for model, images, tasks in claims:
            usage.images[model] += self.reserved(model, images) * tasks

    def full(self, usage: Usage) -> set[str]:
        """The models that can take no task now: paused, their minute used up, or their
        upstream's calls all in flight."""
        full = set(usage.paused)
        for model, provider in self._provider.items():
            cap, per_minute = self.concurrency(provider), self.images_per_minute(model)
            if (cap and usage.calls[provider] >= cap) or (
                per_minute and usage.images[model] >= per_minute
            ):
                full.add(model)
        return full

    def choose(self, usage: Usage, candidates: Sequence[Load], room: int) -> list[int]:
        """The candidates (in queue order) to claim: up to `room`, each within its upstream's
        calls in flight and its model's minute, and none of a model or upstream that an
        earlier candidate did not fit."""
        calls, images = Counter(usage.calls), Counter(usage.images)
        held_models, held_providers = set(usage.paused), set[str]()
        chosen: list[int] = []
        for task in candidates:
            if len(chosen) >= room:
                break
            provider = self.provider(task.model)
            if task.model in held_models or provider in held_providers:
                continue
            cap, need = self.concurrency(provider), self.calls_at_once(task.model, task.slots)
            if cap and calls[provider] + need > cap:
                held_providers.add(provider)
                continue
            per_minute = self.images_per_minute(task.model)
            reserve = self.reserved(task.model, task.images)
            if per_minute and images[task.model] + reserve > per_minute:
                held_models.add(task.model)
                continue
            calls[provider] += need
            images[task.model] += reserve
            chosen.append(task.pk)
        return chosen


def load_of(row: Any) -> Load:
    """A Load from a row of (id, model, num_images, params)."""
    pk, model, num_images, params = row
    stored = params or {}
    one_call = bool(stored.get("group") or stored.get("layer_decomposition"))
    return Load(pk, model, num_images, slots_of(num_images, one_call))


LOAD_COLUMNS = (Task.id, Task.model, Task.num_images, Task.params)


async def read_usage(session: AsyncSession, limits: Limits, now: datetime) -> Usage:
    """The usage, counted over every worker's tasks in the database."""
    usage = Usage()
    running = await session.execute(
        select(*LOAD_COLUMNS).where(
            Task.status == TaskStatus.PROCESSING, Task.lease_expires_at >= now
        )
    )
    limits.count_running(usage, map(load_of, running))
    claimed = await session.execute(
        select(Task.model, Task.num_images, func.count())
        .where(Task.claimed_at > now - WINDOW)
        .group_by(Task.model, Task.num_images)
    )
    limits.count_claimed(usage, ((model, images, tasks) for model, images, tasks in claimed))
    paused = await session.scalars(select(ModelPause.model).where(ModelPause.until > now))
    usage.paused = set(paused)
    return usage


def pause(model: str, until: datetime, code: str, *, postgres: bool) -> Executable:
    """Pauses the model until `until`, or keeps the later pause it has."""
    insert = postgresql.insert if postgres else sqlite.insert
    stmt = insert(ModelPause).values(model=model, until=until, code=code)
    return stmt.on_conflict_do_update(
        index_elements=[ModelPause.model],
        set_={"until": until, "code": code},
        where=ModelPause.until < until,
    )
