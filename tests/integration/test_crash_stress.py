"""Workers killed with SIGKILL at random points, over and over; then the books must balance.

Each trial submits a task, starts a worker and kills it after a random delay (so the kill lands
before, during or after the paid call, the download, the file write or the commit), a few
times, then lets a worker finish. CRASH_TRIALS sets the number of trials (a short run here; the
100-trial run is in docs/reliability.md). At the end:
- every task is completed, with exactly the images asked for, and no image twice;
- every paid call is accounted for: calls the emulator saw = images + calls recorded as lost
  (a worker died between paying and saving the answer: the only case a call is repeated);
- no file without a row, no row without a file.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import time
from pathlib import Path

import httpx

from tests.support import Server, free_port, process_env, start_process, upstream_calls

TRIALS = int(os.environ.get("CRASH_TRIALS", "6"))


def test_random_sigkills_lose_nothing_and_pay_for_nothing_twice(
    tmp_path: Path, database_url: str
) -> None:
    rng = random.Random(os.environ.get("CRASH_SEED", "volcimage"))
    emulator_port = free_port()
    emulator = Server(
        ["emulator", "--port", str(emulator_port)],
        process_env(
            tmp_path, database_url, EMULATOR_LATENCY_MS=150, EMULATOR_DOWNLOAD_LATENCY_MS=100
        ),
        tmp_path,
        emulator_port,
    )
    env = process_env(
        tmp_path,
        database_url,
        VOLC_PROVIDER_MODE="real",
        ARK_API_KEY="crash-key",
        ARK_BASE_URL=f"{emulator.url}/api/v3",
        TASK_LEASE_SECONDS=2,
        MAX_RETRY_COUNT=10,
    )
    api_port = free_port()
    api = Server(["serve", "--no-runner", "--port", str(api_port)], env, tmp_path, api_port)
    worker: subprocess.Popen[bytes] | None = None
    ids: list[str] = []
    try:
        emulator.wait_ready("/_emulator/stats")
        api.wait_ready()
        for _ in range(TRIALS):
            body = {"prompt": "crash", "model": "seedream-3.0", "num_images": 2}
            ids.append(httpx.post(f"{api.url}/api/v1/generate", json=body).json()["task_id"])
            for _kill in range(rng.randint(1, 3)):
                worker = start_process(["worker"], env, tmp_path)
                time.sleep(rng.uniform(0.3, 1.5))  # the random point of death
                worker.send_signal(signal.SIGKILL)
                worker.wait()
        worker = start_process(["worker"], env, tmp_path)
        deadline = time.monotonic() + 30 + 5 * TRIALS
        while True:
            tasks = [httpx.get(f"{api.url}/api/v1/task/{i}").json() for i in ids]
            if all(t["status"] in ("completed", "failed", "cancelled") for t in tasks):
                break
            assert time.monotonic() < deadline, [t["status"] for t in tasks]
            time.sleep(0.2)
        stats = httpx.get(f"{emulator.url}/_emulator/stats").json()
    finally:
        if worker is not None and worker.poll() is None:
            worker.terminate()
            worker.wait(15)
        api.stop()
        emulator.stop()

    assert [t["status"] for t in tasks] == ["completed"] * TRIALS, tasks
    images = [i for t in tasks for i in t["images"]]
    assert all(len(t["images"]) == 2 for t in tasks)
    assert len({i["image_id"] for i in images}) == len(images)
    calls = asyncio.run(upstream_calls(database_url))
    lost = sum(c.lost_calls for c in calls)
    assert stats["generation_calls"] == len(images) + lost, (stats, lost)
    files = {p.name for p in (tmp_path / "data" / "images").rglob("*.jpg")}
    thumbs = {p.name for p in (tmp_path / "data" / "thumbnails").rglob("*.webp")}
    assert len(files) == len(images) and len(thumbs) == len(images), "one file per image"
    assert not list((tmp_path / "data").rglob(".tmp-*")), "no torn writes left"
    print(f"{TRIALS} trials: {len(images)} images, {stats['generation_calls']} calls, {lost} lost")
