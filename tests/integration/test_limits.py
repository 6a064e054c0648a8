"""The account's upstream limits held by the claim: a saturated model or upstream is skipped,
not waited on, and every other model's tasks go on (no head-of-line blocking), across workers.
The emulator enforces the same limits and records its peaks and refusals: the runner must
never need them. No test waits for a minute to pass: it moves the reservations back instead."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select, update

from tests.support import Stack, Studio, local, wait_for_task, wait_task
from volcimage.core.db import utcnow
from volcimage.emulator.visual import DEMO_ACCESS_KEY, DEMO_SECRET_KEY
from volcimage.tasks.models import ModelPause, Task, UpstreamCall

SEEDREAM_3, SEEDREAM_4 = "doubao-seedream-3-0-t2i-250415", "doubao-seedream-4-0-250828"
POLLING = {"RATE_LIMIT_PER_MINUTE": 0}  # the tests poll tasks faster than a client may


async def until_status(studio: Studio, task_id: str, *statuses: str) -> dict[str, Any]:
    for _ in range(2400):  # a safety net for a busy machine: 120 s
        task = (await studio.client.get(f"/api/v1/task/{task_id}")).json()
        if task["status"] in statuses:
            return dict(task)
        await asyncio.sleep(0.05)
    raise AssertionError(f"task {task_id} never became {statuses}: {task}")


async def calls_of(studio: Studio, task_id: str) -> list[UpstreamCall]:
    async with studio.state.sessionmaker() as session:
        rows = await session.scalars(select(UpstreamCall).join(Task).where(Task.task_id == task_id))
        return list(rows.all())


async def test_a_model_past_its_minute_waits_and_other_models_go_on(make_studio: Any) -> None:
    async with make_studio(MODEL_IMAGES_PER_MINUTE="seedream-3.0=2", **POLLING) as studio:
        studio.emulator.limits.ark_images_per_minute = {SEEDREAM_3: 2}
        held_back = [(await studio.generate())["task_id"] for _ in range(3)]
        others = [(await studio.generate(model="seedream-4.0"))["task_id"] for _ in range(2)]
        for task_id in [*held_back[:2], *others]:
            assert (await wait_for_task(studio.client, task_id))["status"] == "completed"
        # the third is queued before the others, yet they ran and it did not: its minute
        # is used, and it was never sent to be refused
        assert (await until_status(studio, held_back[2], "pending"))["retry_count"] == 0
        assert await calls_of(studio, held_back[2]) == []
        assert studio.emulator.limits.ark_refused == 0
        assert studio.emulator.generation_calls == 4

        studio.emulator.limits.ark_images_per_minute = {}  # the minute passes, upstream …
        async with studio.state.sessionmaker() as session:  # … and in the reservations
            claimed = Task.claimed_at.is_not(None)
            minute_ago = utcnow() - timedelta(seconds=61)
            await session.execute(update(Task).where(claimed).values(claimed_at=minute_ago))
            await session.commit()
        task = await wait_for_task(studio.client, held_back[2])
        assert task["status"] == "completed" and task["retry_count"] == 0


async def test_a_429_pauses_that_model_only(make_studio: Any) -> None:
    async with make_studio(**POLLING) as studio:
        studio.emulator.limits.ark_images_per_minute = {SEEDREAM_4: 1}  # the account's own
        first = [(await studio.generate(model="seedream-4.0"))["task_id"] for _ in range(2)]
        ended = [await until_status(studio, i, "completed", "retrying") for i in first]
        assert sorted(t["status"] for t in ended) == ["completed", "retrying"]
        refused = next(t for t in ended if t["status"] == "retrying")
        assert refused["error"]["code"] == "ModelAccountIpmRateLimitExceeded"

        waiting = (await studio.generate(model="seedream-4.0"))["task_id"]
        others = [(await studio.generate())["task_id"] for _ in range(3)]
        for task_id in others:
            assert (await wait_for_task(studio.client, task_id))["status"] == "completed"
        # a new task of the paused model is held although its own turn has come
        assert (await until_status(studio, waiting, "pending"))["retry_count"] == 0
        assert await calls_of(studio, waiting) == []
        assert studio.emulator.limits.ark_refused == 1
        async with studio.state.sessionmaker() as session:
            (pause,) = (await session.scalars(select(ModelPause))).all()
        assert pause.model == "seedream-4.0" and pause.until > utcnow()
        assert pause.code == "ModelAccountIpmRateLimitExceeded"

        studio.emulator.limits.ark_images_per_minute = {}  # the minute passes
        async with studio.state.sessionmaker() as session:
            await session.execute(update(ModelPause).values(until=utcnow()))
            await session.execute(update(Task).values(run_after=utcnow()))
            await session.commit()
        for task_id in (refused["task_id"], waiting):
            assert (await wait_for_task(studio.client, task_id))["status"] == "completed"


def test_visual_concurrency_holds_across_workers_and_blocks_no_other_model(
    tmp_path: Path, database_url: str
) -> None:
    """Two worker processes: on PostgreSQL the claim's advisory lock, on SQLite its write lock
    make count-and-claim one step."""
    # a long lease: a late heartbeat on a loaded machine would hand the Visual task over
    settings = {
        "EMULATOR_LATENCY_MS": 0,
        "MAX_CONCURRENT_TASKS": 4,
        "TASK_LEASE_SECONDS": 10,
        "VOLC_ACCESS_KEY": DEMO_ACCESS_KEY,
        "VOLC_SECRET_KEY": DEMO_SECRET_KEY,
    }
    with Stack(tmp_path, database_url, apis=1, **settings) as stack:
        emulator, api = stack.emulator.url, stack.api.url
        local.post(f"{emulator}/_emulator/limits", json={"visual_concurrency": 1})
        # the Visual API's jobs generate until released; Ark answers at once
        local.post(f"{emulator}/_emulator/latency", json={"visual_latency_ms": 3_600_000})
        for _ in range(2):
            stack.start_worker()

        def submit(model: str) -> str:
            body = {"prompt": "no head-of-line blocking", "model": model}
            return str(local.post(f"{api}/api/v1/generate", json=body).json()["task_id"])

        visual = [submit("jimeng-3.1") for _ in range(3)]
        ark = [submit("seedream-3.0") for _ in range(4)]
        assert all(wait_task(api, i)["status"] == "completed" for i in ark)
        statuses = sorted(local.get(f"{api}/api/v1/task/{i}").json()["status"] for i in visual)
        assert statuses == ["pending", "pending", "processing"]
        assert stack.emulator_stats("/_emulator/visual/stats")["submits"] == 1

        local.post(f"{emulator}/_emulator/latency", json={"visual_latency_ms": 0})
        done = [wait_task(api, i) for i in visual]
        assert all(t["status"] == "completed" and t["retry_count"] == 0 for t in done), done
        assert stack.emulator_stats("/_emulator/visual/stats")["submits"] == 3
        limits = stack.emulator_stats("/_emulator/limits")
    assert limits["visual_peak"] == 1 and limits["visual_refused"] == 0, limits


async def test_a_models_own_timeout_overrides_request_timeout(make_studio: Any) -> None:
    slow = {"EMULATOR_LATENCY_MS": 1500, "MAX_RETRY_COUNT": 0, "REQUEST_TIMEOUT": 300}
    async with make_studio(MODEL_REQUEST_TIMEOUTS="seedream-3.0=0.3", **slow, **POLLING) as studio:
        task = await studio.run()
        assert task["status"] == "failed" and task["error"]["code"] == "Timeout", task
        assert "(0.3 s)" in task["error"]["message"]
        other = await studio.run(model="seedream-4.0")  # REQUEST_TIMEOUT's 300 s
        assert other["status"] == "completed", other
