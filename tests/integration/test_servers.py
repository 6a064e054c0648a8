"""Real processes on free ports: `serve` across a restart, SSE, workers killed mid-task."""

from __future__ import annotations

import asyncio
import json
import signal
import time
from pathlib import Path
from typing import Any

from tests.support import Server, Stack, free_port, local, process_env, upstream_calls, wait_task
from volcimage.tasks.models import CallState


def test_serve_generates_and_keeps_history_across_restart(
    tmp_path: Path, database_url: str
) -> None:
    env = process_env(tmp_path, database_url, EMULATOR_LATENCY_MS=50)
    port = free_port()
    server = Server(["serve", "--port", str(port)], env, tmp_path, port)
    try:
        server.wait_ready()
        created = local.post(
            f"{server.url}/api/v1/generate",
            json={"prompt": "灯塔 at dusk", "model": "seedream-3.0", "num_images": 4},
        )
        assert created.status_code == 201
        task = wait_task(server.url, created.json()["task_id"])
        assert task["status"] == "completed" and len(task["images"]) == 4
        before = local.get(f"{server.url}/api/v1/history").json()
    finally:
        server.stop()
    server = Server(["serve", "--port", str(port)], env, tmp_path, port)
    try:
        server.wait_ready()
        after = local.get(f"{server.url}/api/v1/history").json()
        assert after == before
        for image in after["items"][0]["images"]:
            assert local.get(server.url + image["thumbnail_url"]).status_code == 200
    finally:
        server.stop()
    assert len(list((tmp_path / "data" / "images").rglob("*.jpg"))) == 4


def test_events_stream_task_progress_over_sse(tmp_path: Path, database_url: str) -> None:
    env = process_env(tmp_path, database_url, EMULATOR_LATENCY_MS=100)
    port = free_port()
    server = Server(["serve", "--port", str(port)], env, tmp_path, port)
    try:
        server.wait_ready()
        seen: list[dict[str, Any]] = []
        with local.stream("GET", f"{server.url}/api/v1/events", timeout=30) as stream:
            assert stream.headers["content-type"].startswith("text/event-stream")
            task_id = None
            for line in stream.iter_lines():
                if line.startswith("event: ready"):
                    created = local.post(
                        f"{server.url}/api/v1/generate",
                        json={"prompt": "sse", "model": "seedream-3.0", "num_images": 2},
                    )
                    task_id = created.json()["task_id"]
                if line.startswith("data: ") and task_id:
                    event = json.loads(line[6:])
                    if event.get("task", {}).get("task_id") == task_id:
                        seen.append(event)
                        if event["task"]["status"] == "completed":
                            break
        kinds = [e["type"] for e in seen]
        # the runner may claim the task (task.updated) before the creating request announces
        # it; the page orders a task's states by updated_at, not by arrival
        assert "task.created" in kinds
        assert kinds.count("image.stored") == 2
        assert seen[-1]["task"]["progress"] == 100
    finally:
        server.stop()


def test_worker_killed_after_paying_is_finished_by_another_without_paying_again(
    tmp_path: Path, database_url: str
) -> None:
    slow_downloads = {"EMULATOR_LATENCY_MS": 100, "EMULATOR_DOWNLOAD_LATENCY_MS": 4000}
    with Stack(tmp_path, database_url, apis=1, **slow_downloads) as stack:
        created = local.post(
            f"{stack.api.url}/api/v1/generate",
            json={"prompt": "crash test", "model": "seedream-3.0", "num_images": 2},
        ).json()
        first = stack.start_worker()
        deadline = time.monotonic() + 120  # a safety net for a busy machine
        received = [CallState.RECEIVED] * 2
        while [c.state for c in asyncio.run(upstream_calls(database_url))] != received:
            assert time.monotonic() < deadline, "the worker never received the answers"
            time.sleep(0.05)
        first.send_signal(signal.SIGKILL)
        first.wait()
        assert local.get(f"{stack.api.url}/api/v1/task/{created['task_id']}").json()["images"] == []

        stack.start_worker()
        task = wait_task(stack.api.url, created["task_id"])
        assert task["status"] == "completed", task
        assert len(task["images"]) == 2
        assert len({i["image_id"] for i in task["images"]}) == 2
        assert stack.emulator_stats()["generation_calls"] == 2  # one per image, none repeated
        assert len(list((tmp_path / "data" / "images").rglob("*.jpg"))) == 2


def test_worker_killed_mid_stream_keeps_the_group_images_it_had_and_pays_once(
    tmp_path: Path, database_url: str
) -> None:
    with Stack(tmp_path, database_url, apis=1, EMULATOR_LATENCY_MS=1500) as stack:
        body = {"prompt": "a storyboard", "model": "seedream-4.0", "num_images": 3, "group": True}
        created = local.post(f"{stack.api.url}/api/v1/generate", json=body).json()
        url = f"{stack.api.url}/api/v1/task/{created['task_id']}"
        first = stack.start_worker()
        deadline = time.monotonic() + 120  # a safety net for a busy machine
        while not local.get(url).json()["images"]:
            assert time.monotonic() < deadline, "no image was streamed"
            time.sleep(0.05)
        first.send_signal(signal.SIGKILL)
        first.wait()
        delivered = len(local.get(url).json()["images"])
        assert 1 <= delivered < 3

        stack.start_worker()
        task = wait_task(stack.api.url, created["task_id"])
        assert task["status"] == "completed", task
        assert len(task["images"]) == delivered, "what arrived is kept; the rest is not re-bought"
        assert stack.emulator_stats()["generation_calls"] == 1
        assert task["error"] == {  # and the task says it has fewer than asked
            "code": "partial",
            "message": f"{delivered} of 3 images made: the stream was cut off",
        }
