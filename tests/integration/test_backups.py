"""`volcimage backup DIR` while the studio runs, then `volcimage restore DIR` into a new
database and data directory: the same history and the same files come back; a second restore
onto what is now there is refused unless --force."""

from __future__ import annotations

import asyncio
import hashlib
import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from tests.support import PG_ADMIN_DSN, process_env, upload, volcimage, wait_for_task

API = "/api/v1"


def file_hashes(settings: Any) -> dict[str, str]:
    roots = (settings.IMAGE_DIR, settings.THUMBNAIL_DIR, settings.upload_dir)
    return {
        f"{root.name}/{p.relative_to(root)}": hashlib.sha256(p.read_bytes()).hexdigest()
        for root in roots
        for p in root.rglob("*")
        if p.is_file()
    }


async def everything(studio: Any) -> dict[str, Any]:
    """What a user sees: the history, each task, the tags, the audit log."""
    history = (await studio.client.get(f"{API}/history", params={"limit": 100})).json()
    tasks = [
        (await studio.client.get(f"{API}/task/{t['task_id']}")).json() for t in history["items"]
    ]
    tags = (await studio.client.get(f"{API}/tags")).json()
    return {"history": history, "tasks": tasks, "tags": tags}


@pytest.fixture
async def second_database(database_url: str, tmp_path: Path) -> AsyncIterator[str]:
    """Where the restore goes: an empty database of the same kind."""
    if database_url.startswith("sqlite"):
        yield f"sqlite+aiosqlite:///{tmp_path}/restored/data/database.db"
        return
    name = f"volcimage_r_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(PG_ADMIN_DSN)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        yield database_url.rsplit("/", 1)[0] + f"/{name}"
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


async def test_a_backup_restores_the_same_history_and_files(
    make_studio: Any, database_url: str, second_database: str, tmp_path: Path
) -> None:
    backup = tmp_path / "backup"
    async with make_studio(AUTO_CLEANUP="false") as studio:
        made = [await studio.run(num_images=2), await studio.run()]
        ref = await upload(studio.client, 64, 64)
        edit = await studio.generate(model="seededit-3.0", prompt="snow", reference_images=[ref])
        made.append(await wait_for_task(studio.client, edit["task_id"]))
        assert [t["status"] for t in made] == ["completed"] * 3
        image_id = made[0]["images"][1]["image_id"]
        change = {"favorite": True, "tags": ["keep"]}
        assert (await studio.client.patch(f"{API}/images/{image_id}", json=change)).is_success
        before, files = await everything(studio), file_hashes(studio.settings)

        env = process_env(tmp_path, database_url)
        done = await asyncio.to_thread(volcimage, env, tmp_path, "backup", str(backup))
        assert done.returncode == 0, done.stderr  # while the studio runs
        assert "database: 3 tasks, 4 images, 1 uploads" in done.stdout
        again = await asyncio.to_thread(volcimage, env, tmp_path, "backup", str(backup))
        assert again.returncode == 1 and "is not empty" in again.stderr

    manifest = json.loads((backup / "manifest.json").read_text())
    assert manifest["counts"] == {"tasks": 3, "images": 4, "uploads": 1}
    assert manifest["files"] == {"images": 4, "thumbnails": 5, "uploads": 1}
    assert manifest["missing"] == [] and manifest["revision"]

    root = tmp_path / "restored"
    root.mkdir(exist_ok=True)
    target = process_env(root, second_database)
    done = await asyncio.to_thread(volcimage, target, root, "restore", str(backup))
    assert done.returncode == 0, done.stderr
    assert "files restored: 10" in done.stdout

    refused = await asyncio.to_thread(volcimage, target, root, "restore", str(backup))
    assert refused.returncode == 1
    assert "the database holds 3 tasks, 4 images, 1 uploads" in refused.stderr
    assert "holds 4 files" in refused.stderr and "--force" in refused.stderr
    forced = await asyncio.to_thread(volcimage, target, root, "restore", "--force", str(backup))
    assert forced.returncode == 0, forced.stderr

    where = {k: target[k] for k in ("DATABASE_URL", "DATA_DIR", "IMAGE_DIR", "THUMBNAIL_DIR")}
    async with make_studio(AUTO_CLEANUP="false", **where) as restored:
        assert await everything(restored) == before
        assert file_hashes(restored.settings) == files
        image = await restored.client.get(f"{API}/images/{image_id}")
        assert image.status_code == 200 and image.content
