"""S3-compatible storage, for real: a moto S3 server on a free local port; the app stores
originals, thumbnails and uploads in the bucket and hands out presigned URLs (or proxies)."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest
from botocore.exceptions import EndpointConnectionError
from sqlalchemy import update

from tests.support import S3_BUCKET, free_port, moto_s3, s3_settings, upload
from volcimage.core.config import load_settings
from volcimage.core.db import utcnow
from volcimage.core.outages import is_outage
from volcimage.retention.schedule import Retention
from volcimage.storage.s3 import S3Store
from volcimage.tasks.models import Task

pytestmark = (
    pytest.mark.one_database
)  # the bucket is the point; the queries are those every task makes


@pytest.fixture(scope="module")
def s3_url() -> Iterator[str]:
    with moto_s3() as url:
        yield url


def objects(url: str, prefix: str) -> list[str]:
    client = boto3.client(
        "s3",
        endpoint_url=url,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing-secret",
    )
    answer = client.list_objects_v2(Bucket=S3_BUCKET, Prefix=prefix)
    return sorted(o["Key"][len(prefix) :] for o in answer.get("Contents", []))


async def test_images_live_in_the_bucket_and_download_by_presigned_url(
    make_studio: Any, s3_url: str, tmp_path: Path
) -> None:
    prefix = f"{tmp_path.name}/"
    async with make_studio(**s3_settings(s3_url, prefix, presign=True)) as studio:
        task = await studio.run(num_images=2)
        assert task["status"] == "completed", task
        stored = objects(s3_url, prefix)
        assert len([k for k in stored if k.startswith("images/")]) == 2
        assert len([k for k in stored if k.startswith("thumbnails/")]) == 2
        assert not list(studio.settings.IMAGE_DIR.rglob("*.jpg")), "nothing on the local disk"

        image = task["images"][0]
        answer = await studio.client.get(image["url"] + "?download=1")
        assert answer.status_code == 307
        presigned = answer.headers["location"]
        assert presigned.startswith(s3_url) and "Signature" in presigned
        with httpx.Client() as direct:
            original = direct.get(presigned)
        assert original.status_code == 200 and original.content[:2] == b"\xff\xd8"
        assert original.headers["content-disposition"].startswith("attachment;")

        archive = await studio.client.get("/api/v1/archive", params={"ids": image["image_id"]})
        with zipfile.ZipFile(io.BytesIO(archive.content)) as zipped:
            assert zipped.read(zipped.namelist()[0]) == original.content

        ref = await upload(studio.client, 1200, 800)
        assert any(k.startswith("uploads/") for k in objects(s3_url, prefix))
        edited = await studio.run(model="seededit-3.0", prompt="snow", reference_images=[ref])
        assert edited["status"] == "completed", "the reference was read back from the bucket"

        health = (await studio.client.get("/api/v1/health")).json()
        assert health["checks"]["storage"] == "ok"
        await studio.client.delete(f"/api/v1/task/{task['task_id']}")
        left = objects(s3_url, prefix)
        originals = [k for k in left if k.startswith("images/")]
        assert len(originals) == 1, "the task's two originals went with it; the edit's stays"


async def test_proxied_downloads_without_presigning(
    make_studio: Any, s3_url: str, tmp_path: Path
) -> None:
    prefix = f"{tmp_path.name}/"
    async with make_studio(**s3_settings(s3_url, prefix, presign=False)) as studio:
        task = await studio.run()
        thumb = await studio.client.get(task["images"][0]["thumbnail_url"])
        assert thumb.status_code == 200 and thumb.content[8:12] == b"WEBP"
        original = await studio.client.get(task["images"][0]["url"])
        assert original.status_code == 200 and original.headers["content-type"] == "image/jpeg"


def test_an_unreachable_bucket_is_an_outage(tmp_path: Path) -> None:
    """A 503 with Retry-After, not a 500: botocore's errors are known once S3 storage loads it."""
    nowhere = s3_settings(f"http://127.0.0.1:{free_port()}", "", presign=False)
    store = S3Store(load_settings(_env_file=None, DATA_DIR=tmp_path, **nowhere))
    with pytest.raises(EndpointConnectionError) as error:
        store.read("images", "ab/cd.jpg")
    assert is_outage(error.value)


async def test_retention_removes_old_history_from_the_bucket(
    make_studio: Any, s3_url: str, tmp_path: Path
) -> None:
    prefix = f"{tmp_path.name}-retention/"
    settings = {**s3_settings(s3_url, prefix, presign=True), "AUTO_CLEANUP": "false"}
    async with make_studio(MAX_HISTORY_DAYS=30, **settings) as studio:
        old, young = await studio.run(), await studio.run()
        async with studio.state.sessionmaker() as session:
            long_ago = utcnow() - timedelta(days=31)
            chosen = update(Task).where(Task.task_id == old["task_id"])
            await session.execute(chosen.values(created_at=long_ago))
            await session.commit()
        assert len(objects(s3_url, prefix)) == 4
        retention = Retention(studio.settings, studio.state.sessionmaker, studio.state.store)

        outcome = await retention.run("cli")

        assert outcome is not None and [t.task_id for t, _ in outcome.plan.tasks] == [
            old["task_id"]
        ]
        assert outcome.removed_files == 2 and outcome.freed_bytes > 0
        left = objects(s3_url, prefix)
        assert len(left) == 2
        image = young["images"][0]
        assert (await studio.client.get(image["url"] + "?download=1")).status_code == 307
