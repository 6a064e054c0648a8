"""Images, uploads and archives: files served from the store, tags and favourites, ZIPs."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, File, Query, Request, Response, UploadFile
from fastapi.responses import FileResponse, RedirectResponse, StreamingResponse
from sqlalchemy.ext.asyncio import AsyncSession
from zipstream import ZipStream

from volcimage.audit import log as audit
from volcimage.auth.deps import CallerDep
from volcimage.auth.visibility import Caller
from volcimage.core.db import utcnow
from volcimage.core.errors import ERRORS, NotFound, ValidationError
from volcimage.core.text import Text
from volcimage.http.deps import SessionDep, StateDep
from volcimage.http.state import State
from volcimage.images import service
from volcimage.images.decoding import decode
from volcimage.images.uploads import clean_upload, too_large
from volcimage.storage.files import Area, Store
from volcimage.tasks import reads
from volcimage.tasks.schemas import (
    ImagePublic,
    ImageUpdate,
    TagCount,
    UploadPublic,
    ZipRequest,
    upload_public,
)

router = APIRouter(prefix="/api/v1", tags=["images"])

MAX_ARCHIVE_IMAGES = 500


@router.get("/images/{image_id}", response_class=FileResponse, responses=ERRORS)
async def get_image(
    image_id: Text, session: SessionDep, state: StateDep, caller: CallerDep, download: bool = False
) -> Response:
    """The original file; `?download=1` makes it an attachment."""
    image = await service.get_image(session, image_id, caller)
    return await _file(
        state,
        "images",
        image.file_path,
        image.mime_type,
        filename=f"volcimage-{image_id}{Path(image.file_path).suffix}",
        disposition="attachment" if download else "inline",
        missing=f"The file of image {image_id} is missing",
    )


@router.patch("/images/{image_id}", response_model=ImagePublic, responses=ERRORS)
async def update_image(
    image_id: Text,
    change: ImageUpdate,
    request: Request,
    session: SessionDep,
    state: StateDep,
    caller: CallerDep,
) -> ImagePublic:
    """Marks an image as a favourite or sets its tags."""
    image = await service.get_image(session, image_id, caller)
    image = await service.update_image(session, image, change)
    owner, seed = await service.task_of(session, image)
    audit.record(session, request, "image.update", image_id, **change.model_dump(exclude_none=True))
    await session.commit()
    public = reads.image_shown(image, seed)
    event = {"type": "image.updated", "owner": owner, "image": public.model_dump(mode="json")}
    state.bus.publish(event)
    return public


@router.get("/tags", response_model=list[TagCount])
async def tags(session: SessionDep, caller: CallerDep) -> list[TagCount]:
    """Every tag in use, most used first."""
    return [TagCount(name=n, count=c) for n, c in await service.tag_counts(session, caller)]


@router.get("/archive", response_class=StreamingResponse, responses=ERRORS)
async def archive(
    session: SessionDep,
    state: StateDep,
    caller: CallerDep,
    ids: Annotated[Text, Query(description="Comma-separated image ids, at most 500")],
) -> StreamingResponse:
    """The originals of the given images as one ZIP, streamed as it is written (a link the
    page can follow; POST /images/zip takes the same list as JSON)."""
    return await _zip(session, state, caller, ids.split(","), "ids")


@router.post("/images/zip", response_class=StreamingResponse, responses=ERRORS)
async def zip_images(
    body: ZipRequest, session: SessionDep, state: StateDep, caller: CallerDep
) -> StreamingResponse:
    """The originals of the given images as one ZIP, streamed as it is written."""
    return await _zip(session, state, caller, body.image_ids, "image_ids")


async def _zip(
    session: AsyncSession, state: State, caller: Caller, ids: list[str], field: str
) -> StreamingResponse:
    image_ids = list(dict.fromkeys(i for i in ids if i))
    if not 1 <= len(image_ids) <= MAX_ARCHIVE_IMAGES:
        raise ValidationError(
            f"Give 1 to {MAX_ARCHIVE_IMAGES} image ids", {"field": field, "count": len(image_ids)}
        )
    archive = ZipStream(sized=True)
    store = state.store
    for image in await service.images_by_ids(session, image_ids, caller):
        if not await asyncio.to_thread(store.exists, "images", image.file_path):
            raise NotFound(f"The file of image {image.image_id} is missing")
        name = f"volcimage-{image.image_id}{Path(image.file_path).suffix}"
        path = store.local_path("images", image.file_path)
        if path is not None:
            archive.add_path(str(path), name)
        else:  # read from the bucket only when the archive reaches this entry
            archive.add(_read_later(store, image.file_path), name, size=image.file_size)
    stamp = utcnow().strftime("%Y%m%d-%H%M%S")
    return StreamingResponse(
        iter(archive),
        media_type="application/zip",
        headers={
            "Content-Length": str(len(archive)),
            "Content-Disposition": f'attachment; filename="volcimage-{stamp}.zip"',
        },
    )


@router.get("/images/{image_id}/thumbnail", response_class=FileResponse, responses=ERRORS)
async def get_thumbnail(
    image_id: Text, session: SessionDep, state: StateDep, caller: CallerDep
) -> Response:
    image = await service.get_image(session, image_id, caller)
    return await _file(
        state,
        "thumbnails",
        image.thumbnail_path,
        "image/webp",
        missing=f"The thumbnail of image {image_id} is missing",
    )


def _read_later(store: Store, key: str) -> Iterator[bytes]:
    yield store.read("images", key)


async def _file(
    state: State,
    area: Area,
    key: str,
    media_type: str,
    *,
    missing: str,
    filename: str | None = None,
    disposition: str = "inline",
) -> Response:
    """A stored file after the app's checks: sent by the app, by nginx (X-Accel-Redirect), or
    by the bucket (a redirect to a short-lived presigned URL)."""
    store = state.store
    if not await asyncio.to_thread(store.exists, area, key):
        raise NotFound(missing)
    headers = {"Cache-Control": "private, max-age=31536000, immutable"}
    url = store.download_url(area, key, media_type, filename, disposition)
    if url is not None:
        return RedirectResponse(url, status_code=307, headers={"Cache-Control": "no-store"})
    path = store.local_path(area, key)
    if path is None:  # a bucket without presigned downloads: through the app
        data = await asyncio.to_thread(store.read, area, key)
        if filename:
            headers["Content-Disposition"] = f'{disposition}; filename="{filename}"'
        return Response(data, media_type=media_type, headers=headers)
    if state.settings.X_ACCEL_REDIRECT:
        headers["X-Accel-Redirect"] = f"/_protected/{area}/{key}"
        if filename:
            headers["Content-Disposition"] = f'{disposition}; filename="{filename}"'
        return Response(media_type=media_type, headers=headers)
    return FileResponse(
        path,
        media_type=media_type,
        filename=filename,
        content_disposition_type=disposition,
        headers=headers,
    )


@router.post("/uploads", status_code=201, response_model=UploadPublic, responses=ERRORS)
async def upload(
    request: Request,
    session: SessionDep,
    state: StateDep,
    caller: CallerDep,
    file: Annotated[UploadFile, File(description="A JPEG, PNG or WebP reference image")],
) -> UploadPublic:
    """Keeps a reference image for image-to-image models: its type is read from the bytes,
    its size and pixels are bounded, its metadata (EXIF) is removed."""
    limit = state.settings.MAX_UPLOAD_MB * 1024 * 1024
    if file.size is not None and file.size > limit:  # spooled whole already: say its real size
        raise too_large(file.size, limit)
    raw = await file.read(limit + 1)
    clean = await decode(
        clean_upload,
        raw,
        limit,
        state.settings.THUMBNAIL_MAX_SIZE,
        state.settings.THUMBNAIL_QUALITY,
    )
    stored = await service.save_upload(session, state.store, clean, caller)
    audit.record(session, request, "upload.create", stored.upload_id, bytes=stored.file_size)
    await session.commit()
    return upload_public(stored)


@router.get("/uploads/{upload_id}", response_class=FileResponse, responses=ERRORS)
async def get_upload(
    upload_id: Text, session: SessionDep, state: StateDep, caller: CallerDep
) -> Response:
    stored = await service.get_upload(session, upload_id, caller)
    return await _file(
        state,
        "uploads",
        stored.file_path,
        stored.mime_type,
        missing=f"The file of upload {upload_id} is missing",
    )


@router.get("/uploads/{upload_id}/thumbnail", response_class=FileResponse, responses=ERRORS)
async def get_upload_thumbnail(
    upload_id: Text, session: SessionDep, state: StateDep, caller: CallerDep
) -> Response:
    stored = await service.get_upload(session, upload_id, caller)
    return await _file(
        state,
        "thumbnails",
        stored.thumbnail_path,
        "image/webp",
        missing=f"The thumbnail of upload {upload_id} is missing",
    )
