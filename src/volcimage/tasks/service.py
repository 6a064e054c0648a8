"""Task logic for routes and the runner. Functions take a session and flush; callers commit."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import Select, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session, selectinload

from volcimage.auth.visibility import Caller, visible
from volcimage.catalog.models import Catalog
from volcimage.core.config import Settings
from volcimage.core.db import utcnow
from volcimage.core.errors import Conflict, NotFound, ValidationError
from volcimage.storage.files import Area
from volcimage.tasks import quota
from volcimage.tasks import reads as reads
from volcimage.tasks.checks import Input, check_inputs, check_request, output_size
from volcimage.tasks.models import FINAL_STATUSES, Image, Task, TaskStatus, Upload, UserTag
from volcimage.tasks.params import GenerationParams, TaskParams, images_asked
from volcimage.tasks.quota import ACTIVE_STATUSES
from volcimage.tasks.schemas import TaskPublic


async def create_task(
    session: AsyncSession,
    request: GenerationParams,
    catalog: Catalog,
    settings: Settings,
    caller: Caller,
) -> tuple[Task, list[str]]:
    """Checks the request, admits it (quota.reserve: the first write of the session's
    transaction) and adds the task; the caller commits. Returns the task and the warnings
    the request passed with (a prompt past the model's guidance)."""
    checked = check_request(request, catalog)
    model, width, height = checked.model, checked.width, checked.height
    await quota.reserve(session, settings, caller.user_id, images_asked(request))
    inputs: list[dict[str, str]] = []
    found: list[Input] = []
    for field, role, ref_id in _inputs(request):
        kind, item = await _reference(session, ref_id, caller, field, uploads_only=role == "mask")
        inputs.append({"kind": kind, "id": ref_id, **({"role": role} if role else {})})
        mode = item.mode if isinstance(item, Upload) else None
        found.append(Input(field, ref_id, item.width, item.height, item.file_size, mode))
    check_inputs(model, found)
    if found:  # a tool's result, or an adaptive model's, follows its first input
        width, height = output_size(
            request, model, (found[0].width, found[0].height), (width, height)
        )
    params = TaskParams.chosen(request, model.id, width, height)
    task = Task(
        task_id=str(uuid.uuid4()),
        status=TaskStatus.PENDING,
        owner_id=caller.user_id,
        **params.task_columns(model.provider, inputs),
        run_after=utcnow(),
        images=[],
        calls=[],
    )
    session.add(task)
    await session.flush()
    return task, checked.warnings


def _inputs(request: GenerationParams) -> list[tuple[str, str | None, str]]:
    """(field, role, id) of each input image, in the order the upstream takes them: a tool's
    source, its mask, then the reference images."""
    tool = [("source_image_id", "source", request.source_image_id), ("mask", "mask", request.mask)]
    given = [(field, role, ref_id) for field, role, ref_id in tool if ref_id is not None]
    return given + [("reference_images", None, ref_id) for ref_id in request.reference_images]


async def _reference(
    session: AsyncSession, ref_id: str, caller: Caller, field: str, *, uploads_only: bool
) -> tuple[str, Upload | Image]:
    """One of the caller's uploads or stored images, by id; a 400 naming the id otherwise."""
    upload = await session.scalar(
        select(Upload).where(Upload.upload_id == ref_id, *visible(caller, Upload.owner_id))
    )
    if upload is not None:
        return "upload", upload
    if not uploads_only:
        image = await session.scalar(visible_images(caller).where(Image.image_id == ref_id))
        if image is not None:
            return "image", image
    what = {"source_image_id": "Source image", "mask": "Mask upload"}.get(field, "Reference image")
    raise ValidationError(
        f"{what} {ref_id} does not exist (upload it first with POST /api/v1/uploads)",
        {"field": field, "id": ref_id},
    )


async def reference_file(
    session: AsyncSession, ref: dict[str, str]
) -> tuple[Area, str, str] | None:
    """(storage area, key, MIME type) of a task's reference image, or None if it is gone."""
    if ref["kind"] == "upload":
        upload = await session.scalar(select(Upload).where(Upload.upload_id == ref["id"]))
        return ("uploads", upload.file_path, upload.mime_type) if upload else None
    image = await session.scalar(select(Image).where(Image.image_id == ref["id"]))
    return ("images", image.file_path, image.mime_type) if image else None


def _with_images(stmt: Select[Task]) -> Select[Task]:
    return stmt.options(selectinload(Task.images))


def visible_images(caller: Caller) -> Select[Image]:
    stmt = select(Image)
    mine = visible(caller, Task.owner_id)
    return stmt.join(Task, Image.task_pk == Task.id).where(*mine) if mine else stmt


async def get_task(session: AsyncSession, task_id: str, caller: Caller) -> Task:
    """The task if the caller may see it; a task of someone else's is simply not found."""
    task = await session.scalar(
        _with_images(select(Task).where(Task.task_id == task_id, *visible(caller, Task.owner_id)))
    )
    if task is None:
        raise NotFound(f"Task {task_id} does not exist")
    return task


def show_task(session: Session, task_id: str, caller: Caller) -> TaskPublic:
    """As get_task, for reading only (see views)."""
    found = reads.tasks(session, Task.task_id == task_id, *visible(caller, Task.owner_id))
    if not found:
        raise NotFound(f"Task {task_id} does not exist")
    return found[0]


async def get_task_by_pk(session: AsyncSession, pk: int) -> Task | None:
    return await session.scalar(_with_images(select(Task).where(Task.id == pk)))


def list_tasks(
    session: Session, caller: Caller, limit: int, status: str | None = None
) -> list[TaskPublic]:
    conditions = visible(caller, Task.owner_id)
    if status:
        conditions.append(Task.status == status)
    return reads.tasks(session, reads.newest(*conditions, limit=limit))


def history(
    session: Session,
    caller: Caller,
    *,
    page: int,
    limit: int,
    q: str | None = None,
    model: str | None = None,
    status: str | None = None,
    date_from: datetime | None = None,
    date_to: datetime | None = None,
    favorite: bool | None = None,
    tag: str | None = None,
) -> tuple[int, list[TaskPublic]]:
    conditions = visible(caller, Task.owner_id)
    if q:
        pattern = "%" + q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        conditions.append(
            or_(
                Task.prompt.ilike(pattern, escape="\\"),
                Task.negative_prompt.ilike(pattern, escape="\\"),
            )
        )
    if model:
        conditions.append(Task.model == model)
    if status:
        conditions.append(Task.status == status)
    if date_from:
        conditions.append(Task.created_at >= date_from)
    if date_to:
        conditions.append(Task.created_at < date_to)
    if favorite is not None:
        has_favorite = Task.images.any(Image.favorite.is_(True))
        conditions.append(has_favorite if favorite else ~has_favorite)
    if tag:
        conditions.append(Task.images.any(Image.tags.any(UserTag.tag_name == tag)))
    total = session.connection().scalar(select(func.count()).select_from(Task).where(*conditions))
    page_of = reads.newest(*conditions, offset=(page - 1) * limit, limit=limit)
    return total or 0, reads.tasks(session, page_of)


async def cancel_task(session: AsyncSession, task: Task) -> Task:
    """Pending and retrying tasks stop now; a running one is stopped by its runner's heartbeat."""
    if task.status in FINAL_STATUSES:
        raise Conflict(f"Task {task.task_id} is already {task.status}")
    now = utcnow()
    result = await session.execute(
        update(Task)
        .where(Task.id == task.id, Task.status.in_([TaskStatus.PENDING, TaskStatus.RETRYING]))
        .values(
            status=TaskStatus.CANCELLED,
            completed_at=now,
            updated_at=now,
            lease_owner=None,
            lease_expires_at=None,
            error_message="Cancelled by the user",
            error_code="cancelled",
        )
    )
    if result.rowcount == 0:  # type: ignore[attr-defined]
        await session.execute(
            update(Task).where(Task.id == task.id).values(cancel_requested=True, updated_at=now)
        )
    await session.refresh(task)
    return task


async def retry_task(session: AsyncSession, task: Task, settings: Settings) -> Task:
    """Queues a failed or cancelled task again: admitted like a new one (quota.reserve)."""
    _retryable(task)
    await quota.reserve(session, settings, task.owner_id, task.num_images, requeued=task)
    await session.refresh(task)  # as it is now, under the lock: a second retry finds it queued
    _retryable(task)
    now = utcnow()
    task.admitted_at = now
    task.status = TaskStatus.PENDING
    task.run_after = now
    task.cancel_requested = False
    task.error_code = None
    task.error_message = None
    task.completed_at = None
    task.attempts = 0
    task.retry_count = 0
    await session.flush()
    return task


def _retryable(task: Task) -> None:
    if task.status not in (TaskStatus.FAILED, TaskStatus.CANCELLED):
        raise Conflict(f"Only failed or cancelled tasks can be retried; this one is {task.status}")


async def delete_task(session: AsyncSession, task: Task) -> list[tuple[str, str]]:
    """Deletes the task and its rows; returns (original, thumbnail) keys no other image uses."""
    if task.status == TaskStatus.PROCESSING:
        await cancel_task(session, task)
    orphans: list[tuple[str, str]] = []
    for image in task.images:
        shared = await session.scalar(
            select(func.count())
            .select_from(Image)
            .where(Image.content_hash == image.content_hash, Image.id != image.id)
        )
        if not shared:
            orphans.append((image.file_path, image.thumbnail_path))
    await session.delete(task)
    await session.flush()
    return orphans


async def count_active(session: AsyncSession) -> int:
    value = await session.scalar(
        select(func.count()).select_from(Task).where(Task.status.in_(ACTIVE_STATUSES))
    )
    return value or 0
