"""Task, history, image and event endpoints. Thin: parse, call the service, shape the answer."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import anyio
from fastapi import (
    APIRouter,
    File,
    Query,
    Request,
    Response,
    UploadFile,
    WebSocket,
    WebSocketDisconnect,
)
from fastapi.encoders import jsonable_encoder
from fastapi.responses import FileResponse, RedirectResponse, StreamingResponse
from pydantic import AfterValidator, BeforeValidator
from pydantic import ValidationError as PydanticValidationError
from sqlalchemy.ext.asyncio import AsyncSession
from sse_starlette.sse import EventSourceResponse
from starlette.requests import HTTPConnection
from zipstream import ZipStream

from volcimage import audit
from volcimage.access import needs_recheck, recheck
from volcimage.db import utcnow
from volcimage.errors import NotFound, ValidationError, VolcImageError, body_of, invalid_input
from volcimage.storage.decoding import decode
from volcimage.storage.files import Area, Store
from volcimage.storage.uploads import clean_upload, too_large
from volcimage.tasks import estimates, service, views
from volcimage.tasks.deps import (
    Caller,
    CallerDep,
    SessionDep,
    State,
    StateDep,
)
from volcimage.tasks.events import ACCESS_CHANGED, MISSED
from volcimage.tasks.models import Task, TaskStatus
from volcimage.tasks.schemas import (
    GenerateRequest,
    GenerateResponse,
    HistoryPage,
    ImagePublic,
    ImageUpdate,
    TagCount,
    TaskList,
    TaskPublic,
    UploadPublic,
    ZipRequest,
    upload_public,
)
from volcimage.text import Text

router = APIRouter(prefix="/api/v1", tags=["tasks"])

MAX_ARCHIVE_IMAGES = 500
# An idle stream checks its session this often: a session can also end where no event is
# sent (it expires; `volcimage user set --disabled` on SQLite, with no bus between processes)
RECHECK_SECONDS = 15
IDLE: dict[str, Any] = {"type": "idle"}


def _iso_only(value: object) -> object:
    """ISO 8601 only: pydantic would read a bare number as seconds since 1970."""
    if isinstance(value, str):
        try:
            float(value)
        except ValueError:
            return value
        raise ValueError("use an ISO 8601 date-time, e.g. 2026-11-25T00:00:00Z")
    return value


def _in_utc(value: datetime) -> datetime:
    """In UTC, as stored; a date whose UTC time is past year 1 or 9999 is out of range."""
    try:
        return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
    except OverflowError:
        raise ValueError("the date is out of range once converted to UTC") from None


IsoDatetime = Annotated[datetime, BeforeValidator(_iso_only), AfterValidator(_in_utc)]
ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"description": "Invalid input: `{error, message, details}`"},
    404: {"description": "Not found: `{error, message}`"},
}
STATE_ERRORS = {**ERRORS, 409: {"description": "The task is in the wrong state for this"}}


@router.post("/generate", status_code=201, response_model=GenerateResponse, responses=ERRORS)
async def generate(
    body: GenerateRequest, request: Request, session: SessionDep, state: StateDep, caller: CallerDep
) -> GenerateResponse:
    """Queue a generation task; follow it with GET /task/{id}, GET /events or the WebSocket."""
    return await _queue(body, request, session, state, caller)


async def _queue(
    body: GenerateRequest,
    connection: HTTPConnection,
    session: AsyncSession,
    state: State,
    caller: Caller,
) -> GenerateResponse:
    task = await service.create_task(session, body, state.catalog, state.settings, caller)
    ahead = await service.count_active(session)
    audit.record(
        session,
        connection,
        "task.create",
        task.task_id,
        model=task.model,
        prompt=task.prompt,
        num_images=task.num_images,
    )
    await session.commit()
    await _publish(state, "task.created", task.id)  # first: the runner may claim it already
    concurrency = state.settings.MAX_CONCURRENT_TASKS
    estimated = await session.run_sync(estimates.queued_seconds, task, ahead - 1, concurrency)
    return GenerateResponse(
        task_id=task.task_id,
        status=task.status,
        created_at=task.created_at,
        estimated_time=estimated,
    )


@router.get("/task/{task_id}", response_model=TaskPublic, responses=ERRORS)
async def get_task(task_id: Text, state: StateDep, caller: CallerDep) -> TaskPublic:
    return await state.reads(service.show_task, task_id, caller, indexed=True)


@router.get("/tasks", response_model=TaskList)
async def list_tasks(
    state: StateDep,
    caller: CallerDep,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    status: TaskStatus | None = None,
) -> TaskList:
    return TaskList(
        items=await state.reads(
            service.list_tasks,
            caller,
            limit,
            status,
            indexed=status is None,  # newest: an index
        )
    )


@router.post("/task/{task_id}/cancel", response_model=TaskPublic, responses=STATE_ERRORS)
async def cancel_task(
    task_id: Text, request: Request, session: SessionDep, state: StateDep, caller: CallerDep
) -> TaskPublic:
    task = await service.cancel_task(session, await service.get_task(session, task_id, caller))
    audit.record(session, request, "task.cancel", task_id)
    await session.commit()
    if task.cancel_requested:
        state.bus.request_cancel(task.id)
    return await _publish(state, "task.updated", task.id)


@router.post("/task/{task_id}/retry", response_model=TaskPublic, responses=STATE_ERRORS)
async def retry_task(
    task_id: Text, request: Request, session: SessionDep, state: StateDep, caller: CallerDep
) -> TaskPublic:
    task = await service.retry_task(
        session, await service.get_task(session, task_id, caller), state.settings
    )
    audit.record(session, request, "task.retry", task_id)
    await session.commit()
    return await _publish(state, "task.created", task.id)


async def _publish(state: State, kind: str, pk: int) -> TaskPublic:
    """Announces the task as it now is, and returns it as announced."""
    shown = await state.reads(views.by_pk, pk, indexed=True)
    if shown is None:  # deleted by another request since this one committed
        raise NotFound("The task was deleted meanwhile")
    state.bus.publish(views.event(kind, shown))
    return shown.task


@router.delete("/task/{task_id}", status_code=204, responses=ERRORS)
async def delete_task(
    task_id: Text, request: Request, session: SessionDep, state: StateDep, caller: CallerDep
) -> Response:
    """Cancel the task if it is running, then delete it with its images."""
    return await _delete(await service.get_task(session, task_id, caller), request, session, state)


@router.get("/history", response_model=HistoryPage)
async def history(
    state: StateDep,
    caller: CallerDep,
    page: Annotated[int, Query(ge=1, le=100_000)] = 1,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    q: Annotated[Text | None, Query(max_length=200, description="Search prompt text")] = None,
    model: Text | None = None,
    status: TaskStatus | None = None,
    date_from: IsoDatetime | None = None,
    date_to: IsoDatetime | None = None,
    favorite: Annotated[bool | None, Query(description="With (or without) a favourite")] = None,
    tag: Annotated[Text | None, Query(max_length=50, description="With an image so tagged")] = None,
) -> HistoryPage:
    total, tasks = await state.reads(
        functools.partial(
            service.history,
            caller=caller,
            page=page,
            limit=limit,
            q=q,
            model=model,
            status=status,
            date_from=date_from,
            date_to=date_to,
            favorite=favorite,
            tag=tag,
        ),
        # unfiltered and near the top, a page and its count walk indexes (the count: 0.75 ms at
        # 100k tasks); deep offsets walk far
        indexed=page * limit <= 1000
        and not (q or model or status or date_from or date_to or tag or favorite is not None),
    )
    return HistoryPage(total=total, page=page, limit=limit, items=tasks)


@router.delete("/history/{task_id}", status_code=204, responses=ERRORS)
async def delete_history(
    task_id: Text, request: Request, session: SessionDep, state: StateDep, caller: CallerDep
) -> Response:
    return await _delete(await service.get_task(session, task_id, caller), request, session, state)


async def _delete(task: Task, request: Request, session: AsyncSession, state: State) -> Response:
    task_id, owner = task.task_id, task.owner_id
    orphans = await service.delete_task(session, task)
    audit.record(session, request, "task.delete", task_id, prompt=task.prompt)
    await session.commit()
    for original, thumbnail in orphans:
        await asyncio.to_thread(state.store.delete, original, thumbnail)
    state.bus.publish({"type": "task.deleted", "owner": owner, "task": {"task_id": task_id}})
    return Response(status_code=204)


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
    public = views.image_shown(image, seed)
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


@router.get(
    "/events",
    response_class=EventSourceResponse,
    responses={200: {"content": {"text/event-stream": {"schema": {"type": "string"}}}}},
)
async def events(request: Request, state: StateDep, caller: CallerDep) -> EventSourceResponse:
    """Server-Sent Events: `event: task`, data `{type, task}` on every change of a task the
    caller may see; `{"type": "events.missed"}` when some may have been lost (read again)."""

    async def stream() -> AsyncIterator[dict[str, str]]:
        current = caller
        async with state.bus.subscribe() as queue:
            yield {"event": "ready", "data": "{}"}
            while not await request.is_disconnected():
                try:
                    event = await asyncio.wait_for(queue.get(), timeout=RECHECK_SECONDS)
                except TimeoutError:  # sse-starlette sends its own keep-alive pings
                    event = IDLE
                if needs_recheck(current, event):
                    checked = await recheck(request, current)
                    if checked is None:
                        return  # signed out: the page's next request is a 401
                    current = checked
                public = _shown_to(current, event)
                if public is not None:
                    yield {"event": "task", "data": json.dumps(public, ensure_ascii=False)}

    return EventSourceResponse(stream(), ping=15, headers={"X-Accel-Buffering": "no"})


def _shown_to(caller: Caller, event: dict[str, Any]) -> dict[str, Any] | None:
    """The event as the caller may see it, or None if it is about someone else's task."""
    if event["type"] == MISSED["type"]:
        return event
    if event["type"] in (ACCESS_CHANGED, IDLE["type"]):
        return None
    if not caller.is_admin and event.get("owner") != caller.user_id:
        return None
    return {k: v for k, v in event.items() if k != "owner"}


SIGNED_OUT = 1008, "The session has ended; sign in again"  # policy violation


@router.websocket("/generate/stream")
async def generate_stream(websocket: WebSocket, state: StateDep, caller: CallerDep) -> None:
    """The events of GET /events as JSON messages `{type, task}`; send
    `{"type": "generate", ...}` (the body of POST /generate) to queue a task: the answer is
    `{"type": "task.queued", ...}` or `{"type": "error", error, message, details}`. Closed
    (1008) once the session it was opened with ends."""
    await websocket.accept()
    sending = anyio.Lock()  # events and replies come from two tasks; frames must not interleave
    current = caller

    async def send(message: dict[str, Any]) -> None:
        async with sending:
            await websocket.send_json(message)

    async with state.bus.subscribe() as queue, anyio.create_task_group() as group:

        async def signed_out() -> None:
            with contextlib.suppress(Exception):  # the client may be gone already
                async with sending:
                    await websocket.close(*SIGNED_OUT)
            group.cancel_scope.cancel()

        async def still_signed_in() -> bool:
            nonlocal current
            checked = await recheck(websocket, current)
            if checked is None:
                await signed_out()
                return False
            current = checked
            return True

        async def forward() -> None:
            while True:
                try:
                    event = await asyncio.wait_for(queue.get(), timeout=RECHECK_SECONDS)
                except TimeoutError:
                    event = IDLE
                if needs_recheck(current, event) and not await still_signed_in():
                    return
                public = _shown_to(current, event)
                if public is None:
                    continue
                try:
                    await send(public)
                except Exception:  # the client is gone: the receiving loop ends too
                    return

        group.start_soon(forward)
        await send({"type": "ready"})
        try:
            while True:
                text = await websocket.receive_text()
                # the session may have ended in a process whose notice has not come yet
                if not await still_signed_in():
                    return
                await send(await _command(text, websocket, state, current))
        except WebSocketDisconnect:
            pass
        group.cancel_scope.cancel()


async def _command(text: str, websocket: WebSocket, state: State, caller: Caller) -> dict[str, Any]:
    try:
        message = json.loads(text)
        if not isinstance(message, dict) or message.get("type") != "generate":
            raise ValidationError('Send {"type": "generate", ...} with a POST /generate body')
        body = GenerateRequest.model_validate({k: v for k, v in message.items() if k != "type"})
        async with state.sessionmaker() as session:
            queued = await _queue(body, websocket, session, state, caller)
    except json.JSONDecodeError:
        return {"type": "error", **body_of(ValidationError("The message is not valid JSON"))}
    except RecursionError:  # json.loads of a message nested thousands deep
        return {"type": "error", **body_of(ValidationError("The message is nested too deeply"))}
    except PydanticValidationError as exc:
        return {"type": "error", **jsonable_encoder(body_of(invalid_input(exc.errors())))}
    except VolcImageError as exc:
        return {"type": "error", **body_of(exc)}
    return {"type": "task.queued", **queued.model_dump(mode="json")}
