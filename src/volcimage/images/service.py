"""Images and uploads a caller may see, and the changes they may make to them."""

from __future__ import annotations

import asyncio
import uuid

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from volcimage.auth.visibility import Caller, visible
from volcimage.core.errors import NotFound
from volcimage.images.processing import StoredImage
from volcimage.storage.files import Store
from volcimage.tasks.models import Image, Task, Upload, UserTag
from volcimage.tasks.schemas import ImageUpdate
from volcimage.tasks.service import visible_images


async def save_upload(
    session: AsyncSession, store: Store, clean: StoredImage, caller: Caller
) -> Upload:
    suffix = ".jpg" if clean.mime_type == "image/jpeg" else ".png"
    file_key = await asyncio.to_thread(store.save_upload, clean.data, clean.digest, suffix)
    thumb_key = await asyncio.to_thread(store.save_thumbnail, clean.thumbnail, clean.digest)
    upload = Upload(
        upload_id=str(uuid.uuid4()),
        owner_id=caller.user_id,
        content_hash=clean.digest,
        file_path=file_key,
        thumbnail_path=thumb_key,
        mime_type=clean.mime_type,
        file_size=len(clean.data),
        width=clean.width,
        height=clean.height,
        mode=clean.mode,
    )
    session.add(upload)
    await session.flush()
    return upload


async def get_upload(session: AsyncSession, upload_id: str, caller: Caller) -> Upload:
    upload = await session.scalar(
        select(Upload).where(Upload.upload_id == upload_id, *visible(caller, Upload.owner_id))
    )
    if upload is None:
        raise NotFound(f"Upload {upload_id} does not exist")
    return upload


async def get_image(session: AsyncSession, image_id: str, caller: Caller) -> Image:
    image = await session.scalar(visible_images(caller).where(Image.image_id == image_id))
    if image is None:
        raise NotFound(f"Image {image_id} does not exist")
    return image


async def task_of(session: AsyncSession, image: Image) -> tuple[int | None, int | None]:
    """(owner id, seed) of the image's task."""
    found = select(Task.owner_id, Task.seed).where(Task.id == image.task_pk)
    row = (await session.execute(found)).one()
    return row.owner_id, row.seed


async def update_image(session: AsyncSession, image: Image, change: ImageUpdate) -> Image:
    if change.favorite is not None:
        image.favorite = change.favorite
    if change.tags is not None:
        wanted = set(change.tags)
        kept = [t for t in image.tags if t.tag_name in wanted]
        added = wanted - {t.tag_name for t in kept}
        image.tags = kept + [UserTag(tag_name=name) for name in sorted(added)]
    await session.flush()
    await session.refresh(image, ["tags"])
    return image


async def tag_counts(session: AsyncSession, caller: Caller) -> list[tuple[str, int]]:
    stmt = (
        select(UserTag.tag_name, func.count())
        .join(Image, UserTag.image_pk == Image.id)
        .join(Task, Image.task_pk == Task.id)
        .where(*visible(caller, Task.owner_id))
        .group_by(UserTag.tag_name)
        .order_by(func.count().desc(), UserTag.tag_name)
    )
    return [(name, count) for name, count in (await session.execute(stmt)).all()]


async def images_by_ids(session: AsyncSession, image_ids: list[str], caller: Caller) -> list[Image]:
    """The images in the order asked for; NotFound names the first id that does not exist."""
    stmt = visible_images(caller).where(Image.image_id.in_(image_ids))
    found = {i.image_id: i for i in (await session.scalars(stmt)).all()}
    missing = [i for i in image_ids if i not in found]
    if missing:
        raise NotFound(f"Image {missing[0]} does not exist")
    return [found[i] for i in image_ids]
