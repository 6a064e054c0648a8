"""Tasks as the API and the events show them, read with plain column queries.

Reads outnumber writes by far (pages poll history and tasks), and building ORM objects was
two thirds of a read's cost (docs/benchmarks.md); rows are shaped straight into the models.
Plain functions of a Session: routes run them with `State.reads` (db.Reads), async code with
`AsyncSession.run_sync`.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from sqlalchemy import ColumnElement, Select, bindparam, select
from sqlalchemy.orm import Session

from volcimage.tasks.models import Image, Task, UserTag
from volcimage.tasks.schemas import ImagePublic, TaskPublic, image_public, task_public

TASK_COLUMNS = (
    Task.id,
    Task.owner_id,
    Task.task_id,
    Task.status,
    Task.progress,
    Task.prompt,
    Task.negative_prompt,
    Task.model,
    Task.width,
    Task.height,
    Task.num_images,
    Task.steps,
    Task.scale,
    Task.seed,
    Task.params,
    Task.error_code,
    Task.error_message,
    Task.retry_count,
    Task.created_at,
    Task.updated_at,
    Task.started_at,
    Task.completed_at,
)


class Shown(NamedTuple):
    owner: int | None  # who may receive its events (see the events route)
    task: TaskPublic


_TASKS = select(*TASK_COLUMNS)  # built once: building a 22-column select costs more than running it
# Images left-joined to their tags: a row per tag, or one for an untagged image.
_IMAGES = (
    select(
        Image.task_pk.label("task_pk"),
        Image.id,
        Image.image_id,
        Image.width,
        Image.height,
        Image.file_size,
        Image.mime_type,
        Image.favorite,
        Image.created_at,
        UserTag.tag_name,
    )
    .outerjoin(UserTag, UserTag.image_pk == Image.id)
    .where(Image.task_pk.in_(bindparam("task_pks", expanding=True)))
    .order_by(Image.task_pk, Image.position, UserTag.tag_name)
)


def select_tasks(*conditions: ColumnElement[bool]) -> Select[Any]:
    return _TASKS.where(*conditions)


def load(session: Session, stmt: Select[Any]) -> list[Shown]:
    """The tasks `stmt` (from select_tasks) finds, in its order, with their images and tags."""
    rows = session.connection().execute(stmt).all()
    if not rows:
        return []
    images = _images_of(session, [row.id for row in rows])
    return [Shown(row.owner_id, task_public(row, images.get(row.id, []))) for row in rows]


def tasks(session: Session, stmt: Select[Any]) -> list[TaskPublic]:
    return [shown.task for shown in load(session, stmt)]


def by_pk(session: Session, pk: int) -> Shown | None:
    found = load(session, select_tasks(Task.id == pk))
    return found[0] if found else None


def image_shown(image: Image) -> ImagePublic:
    """A loaded image (its tags load with it), shaped for the API."""
    return image_public(image, [tag.tag_name for tag in image.tags])


def event(kind: str, shown: Shown) -> dict[str, Any]:
    """An event for the bus; `owner` decides who may receive it."""
    return {"type": kind, "owner": shown.owner, "task": shown.task.model_dump(mode="json")}


def _images_of(session: Session, task_pks: list[int]) -> dict[int, list[ImagePublic]]:
    by_image: dict[int, tuple[Any, list[str]]] = {}  # in the query's order
    for row in session.connection().execute(_IMAGES, {"task_pks": task_pks}).all():
        tags = by_image.setdefault(row.id, (row, []))[1]
        if row.tag_name is not None:
            tags.append(row.tag_name)
    images: dict[int, list[ImagePublic]] = {}
    for row, tags in by_image.values():
        images.setdefault(row.task_pk, []).append(image_public(row, tags))
    return images
