"""Task logic for routes and the runner. Functions take a session and flush; callers commit."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import Select, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session, selectinload

from volcimage.auth.visibility import Caller, visible
from volcimage.catalog.models import Catalog, ModelInfo
from volcimage.core.config import Settings
from volcimage.core.db import utcnow
from volcimage.core.errors import Conflict, NotFound, ValidationError
from volcimage.storage.files import Area
from volcimage.tasks import quota
from volcimage.tasks import reads as reads
from volcimage.tasks.models import FINAL_STATUSES, Image, Task, TaskStatus, Upload, UserTag
from volcimage.tasks.params import GenerationParams, TaskParams
from volcimage.tasks.quota import ACTIVE_STATUSES
from volcimage.tasks.schemas import TaskPublic


def check_request(request: GenerationParams, catalog: Catalog) -> tuple[ModelInfo, int, int]:
    """Model-specific checks the schema cannot do. Raises ValidationError naming the field."""
    model = catalog.get(request.model or catalog.default_model)
    if len(request.prompt) > model.max_prompt_length:
        raise ValidationError(
            f"Prompt is too long: {len(request.prompt)} characters, "
            f"{model.name} takes at most {model.max_prompt_length}",
            {"field": "prompt", "max_length": model.max_prompt_length},
        )
    if request.group and not model.max_group_images:
        raise ValidationError(
            f"{model.name} does not make image groups", {"field": "group", "value": True}
        )
    most = (
        model.max_group_images - len(request.reference_images)
        if request.group
        else model.max_images
    )
    if request.num_images > most:
        kind = "images in a group" if request.group else "images per task"
        raise ValidationError(
            f"{model.name} makes at most {most} {kind}",
            {"field": "num_images", "max": most},
        )
    refs = request.reference_images
    low, high = model.min_reference_images, model.max_reference_images
    if not low <= len(refs) <= high:
        if high == 0:
            message = f"{model.name} does not take reference images"
        elif low == high:
            message = f"{model.name} takes exactly {low} reference image(s)"
        else:
            message = f"{model.name} takes {low}–{high} reference images"
        raise ValidationError(
            f"{message} (got {len(refs)})",
            {"field": "reference_images", "min": low, "max": high},
        )
    width, height = _checked_size(request, model)
    given = {
        "seed": request.seed,
        "scale": request.scale,
        "steps": request.steps,
        "negative_prompt": request.negative_prompt,
    }
    for name, value in given.items():
        if value is not None and name not in model.params:
            raise ValidationError(
                f"{model.name} does not take '{name}'",
                {"field": name, "supported": list(model.params)},
            )
    for name in ("scale", "steps"):
        bounds = getattr(model, name)
        value = given[name]
        if bounds is not None and value is not None and not bounds.min <= value <= bounds.max:
            raise ValidationError(
                f"{name} must be between {bounds.min:g} and {bounds.max:g} for {model.name}",
                {"field": name, "min": bounds.min, "max": bounds.max},
            )
    return model, width, height


def _checked_size(request: GenerationParams, model: ModelInfo) -> tuple[int, int]:
    default_w, default_h = model.default_dimensions
    if model.size_rule.mode == "adaptive":
        if request.width is not None or request.height is not None:
            raise ValidationError(
                f"{model.name} takes no size: the result follows the reference image",
                {"field": "width"},
            )
        return default_w, default_h
    if (request.width is None) != (request.height is None):
        raise ValidationError(
            "Give both width and height, or neither",
            {"field": "width" if request.width else "height"},
        )
    width, height = request.width or default_w, request.height or default_h
    problem = model.size_rule.check(width, height)
    if problem:
        raise ValidationError(
            f"Size {width}x{height} is not allowed for {model.name}: {problem}",
            {"field": "size", "width": width, "height": height},
        )
    return width, height


async def create_task(
    session: AsyncSession,
    request: GenerationParams,
    catalog: Catalog,
    settings: Settings,
    caller: Caller,
) -> Task:
    """Checks the request, admits it (quota.reserve: the first write of the session's
    transaction) and adds the task; the caller commits."""
    model, width, height = check_request(request, catalog)
    await quota.reserve(session, settings, caller.user_id, request.num_images)
    references = [await _reference(session, ref, caller) for ref in request.reference_images]
    if references and model.size_rule.mode == "adaptive":
        first = references[0][1]
        width, height = first.width, first.height
    params = TaskParams.chosen(request, model.id, width, height)
    task = Task(
        task_id=str(uuid.uuid4()),
        status=TaskStatus.PENDING,
        owner_id=caller.user_id,
        **params.task_columns(model.provider, [kind for kind, _ in references]),
        run_after=utcnow(),
        images=[],
        calls=[],
    )
    session.add(task)
    await session.flush()
    return task


async def _reference(
    session: AsyncSession, ref_id: str, caller: Caller
) -> tuple[str, Upload | Image]:
    """One of the caller's uploads or stored images, by id; a 400 naming the id otherwise."""
    upload = await session.scalar(
        select(Upload).where(Upload.upload_id == ref_id, *visible(caller, Upload.owner_id))
    )
    if upload is not None:
        return "upload", upload
    image = await session.scalar(visible_images(caller).where(Image.image_id == ref_id))
    if image is not None:
        return "image", image
    raise ValidationError(
        f"Reference image {ref_id} does not exist (upload it first with POST /api/v1/uploads)",
        {"field": "reference_images", "id": ref_id},
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
