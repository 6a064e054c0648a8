"""Scale-out on the real PostgreSQL server: 2 API processes and 3 workers share one database.
No task runs twice, and a page connected to one API process sees what workers do for tasks
submitted through the other (LISTEN/NOTIFY)."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import httpx

from tests.support import Stack, local, wait_task


def collect_events(url: str, seen: list[dict[str, Any]], ready: threading.Event) -> None:
    try:
        with local.stream("GET", url + "/api/v1/events", timeout=60) as stream:
            for line in stream.iter_lines():
                if line == "event: ready":
                    ready.set()
                elif line.startswith("data: ") and line != "data: {}":
                    seen.append(json.loads(line[6:]))
    except httpx.HTTPError:
        return  # the server stopped at the end of the test


def test_two_api_processes_three_workers_one_database(tmp_path: Path, pg_database: str) -> None:
    seen: list[dict[str, Any]] = []
    # TASK_POLL_INTERVAL 5 s: idle workers must be woken by NOTIFY, not by polling
    # A long lease: lease takeovers are tested elsewhere; here they would only add noise on a
    # loaded machine.
    settings = {
        "EMULATOR_LATENCY_MS": 200,
        "MAX_CONCURRENT_TASKS": 3,
        "TASK_POLL_INTERVAL": 5,
        "TASK_LEASE_SECONDS": 10,
    }
    with Stack(tmp_path, pg_database, apis=2, **settings) as stack:
        for _ in range(3):
            stack.start_worker()
        ready = threading.Event()
        listener = threading.Thread(
            target=collect_events, args=(stack.apis[1].url, seen, ready), daemon=True
        )
        listener.start()
        assert ready.wait(10)

        body = {"prompt": "scale out", "model": "seedream-3.0", "num_images": 2}
        submit = f"{stack.apis[0].url}/api/v1/generate"
        ids = [local.post(submit, json=body).json()["task_id"] for _ in range(12)]
        for task_id in ids:
            task = wait_task(stack.apis[1].url, task_id)
            assert task["status"] == "completed" and len(task["images"]) == 2

        assert stack.emulator_stats()["generation_calls"] == 24, "one call per image"
        deadline = time.monotonic() + 120  # a safety net for a busy machine
        while True:
            tasks = [e["task"] for e in seen if "task" in e]
            done = {t["task_id"] for t in tasks if t.get("status") == "completed"}
            created = {e["task"]["task_id"] for e in seen if e["type"] == "task.created"}
            if done >= set(ids) or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert created >= set(ids), "creations through API 1 reached the page on API 2"
        missing = set(ids) - done
        assert not missing, (
            "workers' progress reached the page on API 2; seen for the missing: "
            + str(
                [
                    (e["type"], e.get("task", {}).get("status"))
                    for e in seen
                    if e.get("task", {}).get("task_id") in missing
                ]
            )
        )
        assert sum(1 for e in seen if e["type"] == "image.stored") >= 24


def test_max_concurrent_tasks_holds_across_workers(tmp_path: Path, pg_database: str) -> None:
    settings = {"EMULATOR_LATENCY_MS": 300, "MAX_CONCURRENT_TASKS": 2}
    with Stack(tmp_path, pg_database, apis=1, **settings) as stack:
        for _ in range(3):  # each could run 2 on its own: 6 at once without a global cap
            stack.start_worker()
        body = {"prompt": "one at a time", "model": "seedream-3.0"}
        ids = [
            local.post(f"{stack.api.url}/api/v1/generate", json=body).json()["task_id"]
            for _ in range(8)
        ]
        assert all(wait_task(stack.api.url, i)["status"] == "completed" for i in ids)
        stats = stack.emulator_stats()
    assert stats["generation_calls"] == 8
    assert stats["max_in_flight"] == 2, stats
