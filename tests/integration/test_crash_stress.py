"""Workers killed with SIGKILL at random points, over and over; then the books must balance.

Each trial submits a task, starts a worker and kills it after a random delay (so the kill lands
before, during or after the paid call, the download, the file write or the commit), a few
times, then lets a worker finish. CRASH_TRIALS sets the number of trials (a short run here; the
100-trial run is in docs/reliability.md). At the end:
- every task is completed, with exactly the images asked for, and no image twice;
- every paid call is accounted for: images ≤ calls the emulator saw ≤ images + calls recorded
  as lost (a worker died between recording the call and saving the answer: the only case a
  call is repeated, and it is always recorded);
- no file without a row, no row without a file.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import time
from pathlib import Path

from tests.support import Stack, local, upstream_calls, wait_task

TRIALS = int(os.environ.get("CRASH_TRIALS", "6"))


def test_random_sigkills_lose_nothing_and_pay_for_nothing_twice(
    tmp_path: Path, database_url: str
) -> None:
    rng = random.Random(os.environ.get("CRASH_SEED", "volcimage"))
    faults = {"EMULATOR_LATENCY_MS": 150, "EMULATOR_DOWNLOAD_LATENCY_MS": 100}
    with Stack(tmp_path, database_url, apis=1, MAX_RETRY_COUNT=10, **faults) as stack:
        ids: list[str] = []
        for _ in range(TRIALS):
            body = {"prompt": "crash", "model": "seedream-3.0", "num_images": 2}
            ids.append(local.post(f"{stack.api.url}/api/v1/generate", json=body).json()["task_id"])
            for _kill in range(rng.randint(1, 3)):
                worker = stack.start_worker()
                time.sleep(rng.uniform(0.3, 1.5))  # the random point of death
                worker.send_signal(signal.SIGKILL)
                worker.wait()
        stack.start_worker()
        tasks = [wait_task(stack.api.url, i, timeout=30 + 5 * TRIALS) for i in ids]
        stats = stack.emulator_stats()

    # A task whose workers keep dying is given up after MAX_RETRY_COUNT + 4 attempts (a poison
    # task must not loop forever); that is the only failure allowed, and it must say so.
    gave_up = [t for t in tasks if t["status"] == "failed"]
    assert all(t["error"]["code"] == "TooManyAttempts" for t in gave_up), gave_up
    completed = [t for t in tasks if t["status"] == "completed"]
    assert len(completed) + len(gave_up) == TRIALS and len(gave_up) <= TRIALS // 10
    images = [i for t in tasks for i in t["images"]]
    assert all(len(t["images"]) == 2 for t in completed)
    assert len({i["image_id"] for i in images}) == len(images)
    calls = asyncio.run(upstream_calls(database_url))
    lost = sum(c.lost_calls for c in calls)
    # A call recorded as lost may never have left the dying process, so "lost" can only
    # over-count: no repeated call goes unrecorded.
    assert len(images) <= stats["generation_calls"] <= len(images) + lost, (stats, lost)
    files = {p.name for p in (tmp_path / "data" / "images").rglob("*.jpg")}
    thumbs = {p.name for p in (tmp_path / "data" / "thumbnails").rglob("*.webp")}
    assert len(files) == len(images) and len(thumbs) == len(images), "one file per image"
    assert not list((tmp_path / "data").rglob(".tmp-*")), "no torn writes left"
    print(
        f"{TRIALS} trials: {len(completed)} completed, {len(gave_up)} given up, "
        f"{len(images)} images, {stats['generation_calls']} calls, {lost} recorded as lost"
    )
