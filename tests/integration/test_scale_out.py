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

from tests.support import Server, free_port, process_env, start_process


def collect_events(url: str, seen: list[dict[str, Any]], ready: threading.Event) -> None:
    try:
        with httpx.stream("GET", url + "/api/v1/events", timeout=60) as stream:
            for line in stream.iter_lines():
                if line == "event: ready":
                    ready.set()
                elif line.startswith("data: ") and line != "data: {}":
                    seen.append(json.loads(line[6:]))
    except httpx.HTTPError:
        return  # the server stopped at the end of the test


def test_two_api_processes_three_workers_one_database(tmp_path: Path, pg_database: str) -> None:
    emulator_port = free_port()
    emulator = Server(
        ["emulator", "--port", str(emulator_port)],
        process_env(tmp_path, pg_database, EMULATOR_LATENCY_MS=200),
        tmp_path,
        emulator_port,
    )
    env = process_env(
        tmp_path,
        pg_database,
        VOLC_PROVIDER_MODE="real",
        ARK_API_KEY="scale-out-key",
        ARK_BASE_URL=f"{emulator.url}/api/v3",
        MAX_CONCURRENT_TASKS=3,
        TASK_POLL_INTERVAL=5,  # idle workers must be woken by NOTIFY, not by polling
    )
    apis = [
        Server(["serve", "--no-runner", "--port", str(port)], env, tmp_path, port)
        for port in (free_port(), free_port())
    ]
    workers: list[Any] = []
    seen: list[dict[str, Any]] = []
    try:
        emulator.wait_ready("/_emulator/stats")
        for api in apis:
            api.wait_ready()
        workers = [start_process(["worker"], env, tmp_path) for _ in range(3)]
        ready = threading.Event()
        listener = threading.Thread(
            target=collect_events, args=(apis[1].url, seen, ready), daemon=True
        )
        listener.start()
        assert ready.wait(10)

        body = {"prompt": "scale out", "model": "seedream-3.0", "num_images": 2}
        ids = [
            httpx.post(f"{apis[0].url}/api/v1/generate", json=body).json()["task_id"]
            for _ in range(12)
        ]
        deadline = time.monotonic() + 60
        pending = set(ids)
        while pending:
            assert time.monotonic() < deadline, f"unfinished: {pending}"
            for task_id in list(pending):
                task = httpx.get(f"{apis[1].url}/api/v1/task/{task_id}").json()
                if task["status"] == "completed":
                    assert len(task["images"]) == 2
                    pending.discard(task_id)
            time.sleep(0.2)

        stats = httpx.get(f"{emulator.url}/_emulator/stats").json()
        assert stats["generation_calls"] == 24, "one call per image: no task ran twice"
        deadline = time.monotonic() + 10
        while True:
            done = {
                e["task"]["task_id"] for e in seen if e.get("task", {}).get("status") == "completed"
            }
            created = {e["task"]["task_id"] for e in seen if e["type"] == "task.created"}
            if done >= set(ids) or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert created >= set(ids), "creations through API 1 reached the page on API 2"
        assert done >= set(ids), "workers' progress reached the page on API 2"
        assert sum(1 for e in seen if e["type"] == "image.stored") >= 24
    finally:
        for worker in workers:
            worker.terminate()
        for worker in workers:
            worker.wait(15)
        for api in apis:
            api.stop()
        emulator.stop()
