"""From a paid answer to stored images: inline bytes staged on disk until stored, results
downloaded, files and thumbnails written, the `images` row and the task's progress committed,
and the page told."""

from __future__ import annotations

import asyncio
import base64
import errno
import functools
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from volcimage.core.config import Settings
from volcimage.core.metrics import IMAGES_STORED
from volcimage.images.decoding import decode
from volcimage.images.processing import SUFFIX, prepare
from volcimage.providers.base import Provider, UpstreamImage
from volcimage.queue.lease import TaskSnapshot
from volcimage.queue.writes import Writer
from volcimage.storage.files import Store, write_atomic
from volcimage.tasks.models import Image, Task
from volcimage.tasks.seeds import SLOT_STRIDE, image_seed

IMAGE_ID_NAMESPACE = uuid.UUID("5b0c6f1e-6a43-4a53-9c3e-766f6c63696d")
STAGED = "staged:"  # an answer's image url naming a staged file instead of the upstream's


def image_id(task_id: str, position: int) -> str:
    """The same id on every attempt: the file's bytes (and so its hashed name) come out the
    same, so a process killed after writing it leaves nothing behind."""
    return str(uuid.uuid5(IMAGE_ID_NAMESPACE, f"{task_id}:{position}"))


def metadata(task: TaskSnapshot, position: int) -> dict[str, Any]:
    """What a file carries of its making, so the file alone can be reproduced: its task's
    parameters, with the seed that draws this one image again (so no count of images)."""
    return {
        "task_id": task.task_id,
        "image_id": image_id(task.task_id, position),
        "position": position,
        **task.params.model_dump(exclude={"num_images"}, exclude_none=True),
        "seed": image_seed(task.params.seed, position),
    }


def progress(stored: int, asked: int) -> int:
    """10 once under way, 95 with every image stored; 100 is set by finishing."""
    return 10 + int(85 * stored / asked)


class ImageWriter:
    def __init__(
        self,
        settings: Settings,
        writer: Writer,
        store: Store,
        on_disk_full: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self.settings = settings
        self.writer = writer
        self.store = store
        self.on_disk_full = on_disk_full  # retention frees space before the task's retry
        self.staging_dir = settings.DATA_DIR / "staging"

    async def stage(
        self, task: TaskSnapshot, slot: int, index: int, image: UpstreamImage
    ) -> dict[str, Any]:
        """The image as saved in the call's answer: inline bytes go to disk until stored, so
        the paid bytes stay out of the database."""
        if image.b64_json:
            path = self._staged_path(task, slot, index)
            await asyncio.to_thread(_write_staged, path, image.b64_json)
            image = UpstreamImage(size=image.size, url=f"{STAGED}{path.name}")
        return dict(image.__dict__)

    def unstage(self, task: TaskSnapshot, slot: int, count: int) -> None:
        for index in range(count):
            self._staged_path(task, slot, index).unlink(missing_ok=True)

    def _staged_path(self, task: TaskSnapshot, slot: int, index: int) -> Path:
        return self.staging_dir / f"{task.task_id}-{slot}-{index}.bin"

    async def store_image(
        self, task: TaskSnapshot, provider: Provider, slot: int, index: int, image: UpstreamImage
    ) -> None:
        position = slot * SLOT_STRIDE + index
        async with self.writer.sessionmaker() as session:
            exists = await session.scalar(
                select(Image.id).where(Image.task_pk == task.pk, Image.position == position)
            )
        if exists:
            return
        url = image.url or ""
        if url.startswith(STAGED):
            raw = await asyncio.to_thread((self.staging_dir / url.removeprefix(STAGED)).read_bytes)
        else:
            raw = await provider.fetch(url)
        parameters = metadata(task, position)
        prepared = await decode(
            prepare,
            raw,
            parameters,
            self.settings.THUMBNAIL_MAX_SIZE,
            self.settings.THUMBNAIL_QUALITY,
        )
        try:
            original_key = await asyncio.to_thread(
                self.store.save_original, prepared.data, prepared.digest, SUFFIX[prepared.mime_type]
            )
            thumbnail_key = await asyncio.to_thread(
                self.store.save_thumbnail, prepared.thumbnail, prepared.digest
            )
        except OSError as error:  # the task is retried (lease.settle); first make room
            if error.errno == errno.ENOSPC and self.on_disk_full is not None:
                await self.on_disk_full()
            raise
        row = Image(
            image_id=parameters["image_id"],
            task_pk=task.pk,
            position=position,
            file_path=original_key,
            thumbnail_path=thumbnail_key,
            content_hash=prepared.digest,
            mime_type=prepared.mime_type,
            file_size=len(prepared.data),
            width=prepared.width,
            height=prepared.height,
            source_image_id=task.params.source_image_id,
        )
        try:
            await self.writer.write(functools.partial(_add_image, row, task.params.num_images))
        except IntegrityError:
            # Lost a race for this position, or the task was deleted meanwhile. Names are
            # content hashes of bytes that embed this task's id: no one else's.
            await asyncio.to_thread(self.store.delete, original_key, thumbnail_key)
            return
        IMAGES_STORED.inc()
        await self.writer.publish(task.pk, "image.stored")


async def _add_image(row: Image, asked: int, session: AsyncSession) -> None:
    session.add(row)
    stored = await session.scalar(
        select(func.count()).select_from(Image).where(Image.task_pk == row.task_pk)
    )
    await session.execute(
        update(Task).where(Task.id == row.task_pk).values(progress=progress(stored or 0, asked))
    )


def _write_staged(path: Path, b64: str) -> None:
    write_atomic(path, base64.b64decode(b64))
