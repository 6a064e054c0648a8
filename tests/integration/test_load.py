"""The default setup under load, shaped like the attack that once failed 2–4 tasks in 200: one
`volcimage serve` on SQLite with its runner and the emulator at 200 ms, 200 tasks at once
(Seedream 3.0 with 1–4 images, Jimeng 3.1, Seedream 4.0 groups), and 50 clients reading the
history, the task list and single tasks meanwhile. Nothing fails, no read is a 5xx, every image
asked for is stored and paid for exactly once."""

from __future__ import annotations

import asyncio
import os
import random
import sqlite3
import time
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.support import serving

TASKS = 200
READERS = 50
READ_SECONDS = float(os.environ.get("LOAD_READ_SECONDS", "10"))


def _task(n: int) -> dict[str, Any]:
    if n % 4 == 0:
        return {"prompt": f"jimeng {n}", "model": "jimeng-3.1", "num_images": 1}
    if n % 4 == 1:
        return {"prompt": f"group {n}", "model": "seedream-4.0", "num_images": 3, "group": True}
    return {"prompt": f"fox {n}", "model": "seedream-3.0", "num_images": 1 + n % 4}


async def _read_hard(url: str, task_ids: list[str], seconds: float) -> Counter[int]:
    statuses: Counter[int] = Counter()
    stop = time.monotonic() + seconds
    async with aiohttp.ClientSession(url) as client:

        async def reader(n: int) -> None:
            pick = random.Random(n)
            while time.monotonic() < stop:
                path = pick.choice(
                    [
                        f"/api/v1/task/{pick.choice(task_ids)}",
                        "/api/v1/history?limit=20",
                        f"/api/v1/history?page=2&limit=20&q=fox {pick.randrange(10)}",
                        "/api/v1/tasks?limit=20",
                    ]
                )
                async with client.get(path) as answer:
                    await answer.read()
                    statuses[answer.status] += 1

        await asyncio.gather(*(reader(n) for n in range(READERS)))
    return statuses


async def _submit_all(url: str) -> tuple[list[str], int]:
    async with aiohttp.ClientSession(url) as client:

        async def submit(n: int) -> str:
            async with client.post("/api/v1/generate", json=_task(n)) as answer:
                assert answer.status == 201, await answer.text()
                return str((await answer.json())["task_id"])

        ids = await asyncio.gather(*(submit(n) for n in range(TASKS)))
    return list(ids), sum(_task(n)["num_images"] for n in range(TASKS))


async def _final(url: str, task_ids: list[str]) -> list[dict[str, Any]]:
    async with aiohttp.ClientSession(url) as client:
        for _ in range(3000):
            async with client.get(f"/api/v1/tasks?limit={TASKS}") as answer:
                tasks = (await answer.json())["items"]
            if len(tasks) == len(task_ids) and all(
                t["status"] in ("completed", "failed", "cancelled") for t in tasks
            ):
                return list(tasks)
            await asyncio.sleep(0.5)
    raise AssertionError("tasks did not end")


@pytest.mark.timeout(600)  # a safety net: about 80 s here, longer on a busy machine
def test_two_hundred_tasks_beside_fifty_readers_on_the_default_setup(tmp_path: Path) -> None:
    settings = {
        "EMULATOR_LATENCY_MS": 200,
        "MAX_CONCURRENT_TASKS": 5,  # the defaults, not the suite's
        # an account that takes 5 Visual jobs at once: the queue under load is the point here,
        # not the account's limit (VISUAL_CONCURRENCY 1 would run the 50 jobs one by one)
        "VISUAL_CONCURRENCY": 5,
        "TASK_POLL_INTERVAL": 2,
        "RATE_LIMIT_PER_MINUTE": 0,  # every reader is 127.0.0.1: the per-client limit is not
    }  # under test here
    with serving(tmp_path, **settings) as server:

        async def run() -> tuple[list[str], int, Counter[int], list[dict[str, Any]]]:
            ids, asked = await _submit_all(server.url)
            statuses = await _read_hard(server.url, ids, READ_SECONDS)
            return ids, asked, statuses, await _final(server.url, ids)

        _, asked, statuses, tasks = asyncio.run(run())
        ark = aiohttp_get_json(server.url + "/emulator/_emulator/stats")
        visual = aiohttp_get_json(server.url + "/emulator/_emulator/visual/stats")
        log = server.log_path.read_text()
    assert Counter(t["status"] for t in tasks) == {"completed": TASKS}, [
        (t["task_id"], t["error_code"], t["error_message"])
        for t in tasks
        if t["status"] != "completed"
    ]
    assert sum(statuses.values()) > READERS
    assert not [s for s in statuses if s >= 500], statuses
    assert sum(len(t["images"]) for t in tasks) == asked
    with sqlite3.connect(tmp_path / "data" / "database.db") as db:
        images, billed, lost = db.execute(
            "SELECT (SELECT count(*) FROM images), sum(images_billed), sum(lost_calls) "
            "FROM upstream_calls"
        ).fetchone()
    assert images == billed == asked
    assert lost == 0
    assert ark["images_generated"] + visual["images_generated"] == asked  # paid once each
    assert "Traceback" not in log


def aiohttp_get_json(url: str) -> dict[str, Any]:
    async def get() -> dict[str, Any]:
        async with aiohttp.ClientSession() as client, client.get(url) as answer:
            return dict(await answer.json())

    return asyncio.run(get())
