"""Retention for real: `volcimage cleanup` (and its dry run) on history older than
MAX_HISTORY_DAYS, over MAX_STORAGE_GB (oldest first, favourites and running tasks kept), and on
uploads no task uses; the run at start; one worker at a time on PostgreSQL; and a disk that
fills up (a small tmpfs), where a cleanup makes room and the task is retried, not failed."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import subprocess
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select, update

from tests.support import process_env, upload, volcimage, wait_for_task
from volcimage.core.db import utcnow
from volcimage.retention.plan import ORPHAN_GRACE
from volcimage.retention.schedule import CLEANUP_LOCK, Retention
from volcimage.tasks.models import Image, Task, TaskStatus, Upload

API = "/api/v1"
GB = 1024**3


async def backdate(studio: Any, task_ids: list[str], days: float) -> None:
    async with studio.state.sessionmaker() as session:
        when = utcnow() - timedelta(days=days)
        await session.execute(
            update(Task).where(Task.task_id.in_(task_ids)).values(created_at=when)
        )
        await session.commit()


async def history_ids(studio: Any) -> set[str]:
    page = (await studio.client.get(f"{API}/history", params={"limit": 100})).json()
    return {item["task_id"] for item in page["items"]}


def stored_files(settings: Any) -> dict[str, int]:
    """Every image, thumbnail and upload file on disk, by path, with its size."""
    roots = (settings.IMAGE_DIR, settings.THUMBNAIL_DIR, settings.upload_dir)
    return {
        str(p.relative_to(root.parent)): p.stat().st_size
        for root in roots
        for p in root.rglob("*")
        if p.is_file()
    }


async def files_of(studio: Any, task_id: str) -> dict[str, int]:
    """The task's files (original and thumbnail of each image), by path, with their sizes."""
    async with studio.state.sessionmaker() as session:
        rows = await session.execute(
            select(Image.file_path, Image.thumbnail_path)
            .join(Task, Image.task_pk == Task.id)
            .where(Task.task_id == task_id)
        )
        paths = [
            studio.state.store.local_path(area, key)
            for original, thumbnail in rows
            for area, key in (("images", original), ("thumbnails", thumbnail))
        ]
    return {str(path): path.stat().st_size for path in paths}


async def cleanup(studio: Any, *args: str) -> subprocess.CompletedProcess[str]:
    """`volcimage cleanup` as an operator runs it, beside the running studio."""
    root = Path(studio.settings.DATA_DIR).parent
    env = process_env(root, studio.settings.DATABASE_URL, AUTO_CLEANUP="false")
    for name in ("MAX_HISTORY_DAYS", "MAX_STORAGE_GB", "CLEANUP_KEEP_FAVORITES"):
        env[name] = str(getattr(studio.settings, name))
    done = await asyncio.to_thread(volcimage, env, root, "cleanup", *args)
    assert done.returncode == 0, done.stderr
    return done


async def test_history_past_the_days_goes_with_its_files_favourites_stay(
    make_studio: Any,
) -> None:
    async with make_studio(AUTO_CLEANUP="false", MAX_HISTORY_DAYS=30) as studio:
        old, favourite, young = [(await studio.run())["task_id"] for _ in range(3)]
        await backdate(studio, [old, favourite], days=31)
        image_id = (await studio.client.get(f"{API}/task/{favourite}")).json()["images"][0]
        liked = await studio.client.patch(
            f"{API}/images/{image_id['image_id']}", json={"favorite": True}
        )
        assert liked.status_code == 200, liked.text
        gone = await files_of(studio, old)
        kept = await files_of(studio, favourite) | await files_of(studio, young)

        done = await cleanup(studio)

        assert f"task {old} " in done.stdout and "older than 30 days" in done.stdout
        assert done.stdout.splitlines()[-1].startswith("removed 1 tasks, 0 uploads, 2 files")
        assert await history_ids(studio) == {favourite, young}
        assert not [path for path in gone if Path(path).exists()]
        assert all(Path(path).exists() for path in kept)
        entries = (await studio.client.get(f"{API}/audit", params={"action": "cleanup"})).json()
        assert [e["detail"] for e in entries] == [
            {"trigger": "cli", "tasks": 1, "uploads": 0, "files": 2, "bytes": sum(gone.values())}
        ]


async def test_the_storage_cap_removes_the_oldest_first_never_favourites_or_running(
    make_studio: Any,
) -> None:
    async with make_studio(AUTO_CLEANUP="false", MAX_HISTORY_DAYS=0) as studio:
        ids = [(await studio.run())["task_id"] for _ in range(5)]
        for age, task_id in enumerate(ids):  # ids[0] the oldest
            await backdate(studio, [task_id], days=10 - age)
        favourite, running, first, second, newest = ids
        image = (await studio.client.get(f"{API}/task/{favourite}")).json()["images"][0]
        await studio.client.patch(f"{API}/images/{image['image_id']}", json={"favorite": True})
        async with studio.state.sessionmaker() as session:  # another worker's, held
            await session.execute(
                update(Task)
                .where(Task.task_id == running)
                .values(
                    status=TaskStatus.PROCESSING,
                    lease_owner="elsewhere",
                    lease_expires_at=utcnow() + timedelta(days=1),
                )
            )
            await session.commit()
        total = sum(stored_files(studio.settings).values())
        spare = sum((await files_of(studio, first)).values())
        spare += sum((await files_of(studio, second)).values())
        # one byte more than the two oldest removable tasks free: both must go, no more
        studio.settings.MAX_STORAGE_GB = (total - spare) / GB

        done = await cleanup(studio)

        assert done.stdout.count("while over") == 2, done.stdout
        assert await history_ids(studio) == {favourite, running, newest}
        assert sum(stored_files(studio.settings).values()) == total - spare
        again = await cleanup(studio)
        assert again.stdout.splitlines() == [again.stdout.splitlines()[-1]]  # nothing more
        assert "removed 0 tasks" in again.stdout


async def test_an_upload_no_task_uses_goes_after_the_days_a_used_one_stays(
    make_studio: Any,
) -> None:
    async with make_studio(AUTO_CLEANUP="false", MAX_HISTORY_DAYS=7) as studio:
        unused, used = await upload(studio.client, 64, 64), await upload(studio.client, 80, 64)
        task = await studio.generate(model="seededit-3.0", prompt="snow", reference_images=[used])
        assert (await wait_for_task(studio.client, task["task_id"]))["status"] == "completed"
        async with studio.state.sessionmaker() as session:
            old = utcnow() - timedelta(days=8)
            await session.execute(update(Upload).values(created_at=old))
            await session.commit()
            unused_file = await session.scalar(
                select(Upload.file_path).where(Upload.upload_id == unused)
            )
        path = studio.state.store.local_path("uploads", unused_file)
        assert path.exists()

        done = await cleanup(studio)

        assert f"upload {unused} " in done.stdout
        assert f"upload {used}" not in done.stdout
        assert (await studio.client.get(f"{API}/uploads/{unused}")).status_code == 404
        assert (await studio.client.get(f"{API}/uploads/{used}")).status_code == 200
        assert not path.exists()


async def test_a_dry_run_says_what_it_would_remove_and_removes_nothing(
    make_studio: Any,
) -> None:
    async with make_studio(AUTO_CLEANUP="false", MAX_HISTORY_DAYS=30) as studio:
        old = (await studio.run())["task_id"]
        await backdate(studio, [old], days=45)
        stray = studio.settings.IMAGE_DIR / "zz" / "stray.jpg"  # named by no row, long ago
        stray.parent.mkdir(parents=True)
        stray.write_bytes(b"x" * 10)
        long_ago = utcnow().timestamp() - 2 * ORPHAN_GRACE.total_seconds()
        os.utime(stray, (long_ago, long_ago))
        before = stored_files(studio.settings)

        done = await cleanup(studio, "--dry-run")

        assert f"task {old} " in done.stdout
        assert "file images/zz/stray.jpg 10 bytes (named by no row)" in done.stdout
        assert done.stdout.splitlines()[-1].startswith("would remove 1 tasks, 0 uploads, 3 files")
        assert await history_ids(studio) == {old}
        assert stored_files(studio.settings) == before
        entries = (await studio.client.get(f"{API}/audit", params={"action": "cleanup"})).json()
        assert entries == []


async def test_with_auto_cleanup_the_studio_cleans_up_as_it_starts(make_studio: Any) -> None:
    async with make_studio(AUTO_CLEANUP="false") as studio:
        old, young = [(await studio.run())["task_id"] for _ in range(2)]
        await backdate(studio, [old], days=31)
    async with make_studio(AUTO_CLEANUP="true", MAX_HISTORY_DAYS=30) as studio:
        entries: list[dict[str, Any]] = []
        for _ in range(2400):  # the run at start is in the background; its entry comes last
            entries = (await studio.client.get(f"{API}/audit", params={"action": "cleanup"})).json()
            if entries:
                break
            await asyncio.sleep(0.05)
        assert [e["detail"]["trigger"] for e in entries] == ["start"]
        assert await history_ids(studio) == {young}


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
async def test_on_postgresql_one_process_at_a_time_cleans_up(make_studio: Any) -> None:
    async with make_studio(AUTO_CLEANUP="false", MAX_HISTORY_DAYS=30) as studio:
        old = (await studio.run())["task_id"]
        await backdate(studio, [old], days=31)
        other = Retention(studio.settings, studio.state.sessionmaker, studio.state.store)
        async with studio.state.sessionmaker() as holder:  # another worker's run under way
            await holder.execute(select(func.pg_advisory_xact_lock(CLEANUP_LOCK)))
            assert await other.run("hourly") is None
            assert await history_ids(studio) == {old}
        outcome = await other.run("hourly")
        assert outcome is not None and len(outcome.plan.tasks) == 1
        assert await history_ids(studio) == set()


async def freed_bytes(studio: Any) -> float:
    metrics = (await studio.client.get("/metrics")).text
    found = re.search(r"^volcimage_cleanup_freed_bytes_total (\S+)$", metrics, re.M)
    assert found, metrics
    return float(found.group(1))


@contextlib.contextmanager
def small_disk(path: Path, size: int) -> Iterator[Path]:
    """A tmpfs of `size` bytes at `path` (root only: else the test is skipped)."""
    path.mkdir(parents=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
        capture_output=True,
        check=False,
    )
    if mounted.returncode:
        pytest.skip(f"cannot mount a small filesystem here: {mounted.stderr.decode().strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


async def test_a_full_disk_is_cleaned_up_and_the_task_retried_not_failed(
    make_studio: Any, tmp_path: Path
) -> None:
    async with make_studio(AUTO_CLEANUP="false") as probe:  # how big one task's files are
        first = (await probe.run())["task_id"]
        per_task = sum((await files_of(probe, first)).values())
        assert (await probe.client.delete(f"{API}/history/{first}")).status_code == 204
        freed_before = await freed_bytes(probe)
    with small_disk(tmp_path / "small", 6 * per_task) as disk:
        async with make_studio(
            AUTO_CLEANUP="true",
            MAX_HISTORY_DAYS=0,
            # the cap leaves room for three tasks, the disk for five; runs at start and
            # hourly keep to it, and a write that finds the disk full makes one run now
            MAX_STORAGE_GB=3.5 * per_task / GB,
            IMAGE_DIR=disk / "images",
            THUMBNAIL_DIR=disk / "thumbnails",
            MAX_CONCURRENT_TASKS=1,
        ) as studio:
            finished = [await studio.run() for _ in range(12)]
            first = finished[0]["task_id"]
            assert [t["status"] for t in finished] == ["completed"] * 12, finished
            assert any(t["retry_count"] for t in finished), "the disk never filled up"
            entries = (await studio.client.get(f"{API}/audit", params={"action": "cleanup"})).json()
            triggers = {e["detail"]["trigger"] for e in entries}
            assert "disk_full" in triggers, entries
            left = await history_ids(studio)
            assert finished[-1]["task_id"] in left and first not in left
            assert len(left) < 12  # the oldest made room
            assert await freed_bytes(studio) > freed_before  # counted for /metrics
            for task_id in left:  # no row names a file that is gone
                assert all(Path(p).exists() for p in await files_of(studio, task_id))
