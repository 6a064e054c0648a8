"""Tasks as the API and the events show them, read with plain column queries.

Reads outnumber writes by far (pages poll history and tasks), and building ORM objects was
two thirds of a read's cost (docs/benchmarks.md); rows are shaped straight into the models.
Plain functions of a Session: routes run them with `State.reads` (db.Reads), async code with
`AsyncSession.run_sync`.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from volcimage.auth.models import User
from volcimage.events.bus import Event
from volcimage.tasks import estimates
from volcimage.tasks.models import FINAL_STATUSES, Image, Task, UserTag
from volcimage.tasks.params import COLUMNS
from volcimage.tasks.schemas import (
    ImagePublic,
    ImageRow,
    TaskPublic,
    image_public,
    task_public,
)
from volcimage.tasks.seeds import image_seed

TASK_COLUMNS = (
    Task.id,
    Task.owner_id,
    Task.task_id,
    Task.status,
    Task.progress,
    *(getattr(Task, name) for name in COLUMNS),
    Task.params,
    Task.error_code,
    Task.error_message,
    Task.retry_count,
    Task.created_at,
    Task.updated_at,
    Task.started_at,
    Task.completed_at,
    User.username.label("owner_name"),
)


class Shown(NamedTuple):
    owner: int | None  # who may receive its events (see the events route)
    task: TaskPublic


NEWEST_FIRST = (Task.created_at.desc(), Task.id.desc())
TAG_SEPARATOR = "\x1f"  # tags cannot hold control characters (schemas.Tag)
# An image's tags in one string, looked up by index per image row: joined, a tag was a row,
# each repeating the task's columns (its prompt, its parameters).
_TAGS = (
    select(func.aggregate_strings(UserTag.tag_name, TAG_SEPARATOR))
    .where(UserTag.image_pk == Image.id)
    .scalar_subquery()
)
# Each task beside its images: a row per image, or one for a task without images. Labelled:
# tasks have width, height and created_at too. Built once: building it costs more than running it.
_JOINED = (
    select(
        *TASK_COLUMNS,
        Image.id.label("image_pk"),
        Image.image_id.label("image_id"),
        Image.position.label("image_position"),
        Image.width.label("image_width"),
        Image.height.label("image_height"),
        Image.file_size.label("image_file_size"),
        Image.mime_type.label("image_mime_type"),
        Image.favorite.label("image_favorite"),
        Image.created_at.label("image_created_at"),
        Image.source_image_id.label("image_source_image_id"),
        _TAGS.label("image_tags"),
    )
    .outerjoin(User, User.id == Task.owner_id)
    .outerjoin(Image, Image.task_pk == Task.id)
    .order_by(*NEWEST_FIRST, Image.position)
)


def newest(*conditions: ColumnElement[bool], offset: int = 0, limit: int) -> ColumnElement[bool]:
    """A condition for `load`: the task is on this page of those matching, newest first."""
    page = select(Task.id).where(*conditions).order_by(*NEWEST_FIRST).offset(offset).limit(limit)
    return Task.id.in_(page)


def load(session: Session, *conditions: ColumnElement[bool]) -> list[Shown]:
    """The tasks matching, newest first, with their images and tags, in one query: a second for
    the images cost as much as the first (docs/benchmarks.md)."""
    found: dict[int, tuple[Any, list[ImagePublic]]] = {}  # in the query's order
    for row in session.connection().execute(_JOINED.where(*conditions)):
        images = found.setdefault(row.id, (row, []))[1]
        if row.image_pk is not None:
            images.append(_image(row))
    active = {task.model for task, _ in found.values() if task.status not in FINAL_STATUSES}
    runs = estimates.recent_runs(session, active)  # no query when nothing is under way
    return [
        Shown(task.owner_id, task_public(task, images, _estimate(task, runs)))
        for task, images in found.values()
    ]


def _estimate(task: Any, runs: dict[str, list[estimates.Run]]) -> int | None:
    return None if task.status in FINAL_STATUSES else estimates.for_task(task, runs)


def _image(row: Any) -> ImagePublic:
    fields = ImageRow(
        row.image_id,
        row.image_width,
        row.image_height,
        row.image_file_size,
        row.image_mime_type,
        row.image_favorite,
        row.image_created_at,
        row.image_source_image_id,
    )
    tags = sorted(row.image_tags.split(TAG_SEPARATOR)) if row.image_tags else []
    return image_public(fields, tags, image_seed(row.seed, row.image_position))


def tasks(session: Session, *conditions: ColumnElement[bool]) -> list[TaskPublic]:
    return [shown.task for shown in load(session, *conditions)]


def by_pk(session: Session, pk: int) -> Shown | None:
    found = load(session, Task.id == pk)
    return found[0] if found else None


def image_shown(image: Image, task_seed: int | None) -> ImagePublic:
    """A loaded image (its tags load with it) of a task with this seed, shaped for the API."""
    tags = sorted(tag.tag_name for tag in image.tags)  # as `load` sorts
    return image_public(image, tags, image_seed(task_seed, image.position))


def event(kind: str, shown: Shown) -> dict[str, Any]:
    """An event for the bus; `owner` decides who may receive it."""
    return {"type": kind, "owner": shown.owner, "task": shown.task.model_dump(mode="json")}


async def event_of_note(
    session: AsyncSession, kind: str, item_id: str, owner: int | None
) -> Event | None:
    """The event another process announced (events/relay), read back from the database."""
    if kind == "image.updated":
        query = select(Image, Task.seed).join(Task, Task.id == Image.task_pk)
        row = (await session.execute(query.where(Image.image_id == item_id))).first()
        if row is None:
            return None
        public = image_shown(row[0], row[1]).model_dump(mode="json")
        return {"type": kind, "owner": owner, "image": public}
    found = await session.run_sync(load, Task.task_id == item_id)
    return event(kind, found[0]) if found else None
