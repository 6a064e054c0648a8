"""Request and response models of the task API (the seed's contract, kept exactly)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, NamedTuple

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
)
from sqlalchemy import Row

from volcimage.core.text import Text
from volcimage.tasks.models import Image, Upload
from volcimage.tasks.params import COLUMNS, GenerationParams


class GenerateRequest(GenerationParams):
    """The body of POST /generate (and of the WebSocket's generate message)."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "prompt": "一只可爱的猫咪在阳光下, watercolor",
                    "model": "seedream-3.0",
                    "width": 1024,
                    "height": 1024,
                    "num_images": 2,
                    "seed": 42,
                    "scale": 2.5,
                }
            ]
        },
    )


class UploadPublic(BaseModel):
    upload_id: str
    url: str
    thumbnail_url: str
    width: int
    height: int
    file_size: int
    mime_type: str
    created_at: datetime


def upload_public(upload: Upload) -> UploadPublic:
    base = f"/api/v1/uploads/{upload.upload_id}"
    return UploadPublic(
        upload_id=upload.upload_id,
        url=base,
        thumbnail_url=f"{base}/thumbnail",
        width=upload.width,
        height=upload.height,
        file_size=upload.file_size,
        mime_type=upload.mime_type,
        created_at=upload.created_at,
    )


class GenerateResponse(BaseModel):
    task_id: str
    status: str
    created_at: datetime
    estimated_time: int = Field(..., description="Seconds, a rough guess from the queue")
    warnings: list[str] = Field(
        default_factory=list, description="What passed but may not do as meant (a long prompt)"
    )


class ImagePublic(BaseModel):
    image_id: str
    url: str
    thumbnail_url: str
    width: int
    height: int
    file_size: int
    mime_type: str
    favorite: bool
    tags: list[str]
    seed: int | None = Field(
        description="The seed this image was drawn with: make it again with this seed and one "
        "image; null when the seed was random or the model takes none"
    )
    created_at: datetime
    source_image_id: str | None = Field(
        None, description="The image or upload an editing tool made this from (lineage)"
    )


# No control characters: they would not show, and one separates an image's tags in reads (views)
# (this pattern replaces Text's, and refuses NUL too)
Tag = Annotated[
    Text,
    StringConstraints(
        strip_whitespace=True, min_length=1, max_length=50, pattern=r"^[^\x00-\x1f\x7f]+$"
    ),
]


class ImageUpdate(BaseModel):
    """Favourite and tags of an image; a field left out is left unchanged."""

    model_config = ConfigDict(
        extra="forbid",
        strict=True,
        json_schema_extra={"examples": [{"favorite": True, "tags": ["cats"]}]},
    )

    favorite: bool | None = None
    tags: list[Tag] | None = Field(None, max_length=20)


class TagCount(BaseModel):
    name: str
    count: int


class TaskError(BaseModel):
    code: str | None
    message: str


class TaskPublic(BaseModel):
    task_id: str
    owner: str | None = Field(description="Who asked for it, with user accounts on")
    status: str
    progress: int
    # the parameters with a column (params.COLUMNS); the others are in `params`
    prompt: str
    negative_prompt: str | None
    model: str
    width: int
    height: int
    num_images: int
    steps: int | None
    scale: float | None
    seed: int | None
    params: dict[str, Any]
    images: list[ImagePublic]
    error: TaskError | None
    retry_count: int
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None
    completed_at: datetime | None
    estimated_seconds: int | None = Field(
        None,
        description="While queued or running: seconds from start to finish that tasks like "
        "this one (model, size) took here lately; null once it has ended",
    )


class ZipRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    image_ids: list[Annotated[Text, StringConstraints(min_length=1, max_length=36)]] = Field(
        ..., max_length=500, description="Image ids, at most 500"
    )


class TaskList(BaseModel):
    items: list[TaskPublic]


class HistoryPage(BaseModel):
    total: int
    page: int
    limit: int
    items: list[TaskPublic]


class ImageRow(NamedTuple):
    """An image's shown fields, as a read of several tables at once finds them."""

    image_id: str
    width: int
    height: int
    file_size: int
    mime_type: str
    favorite: bool
    created_at: datetime
    source_image_id: str | None


def image_public(image: Image | ImageRow, tags: list[str], seed: int | None) -> ImagePublic:
    base = f"/api/v1/images/{image.image_id}"
    return ImagePublic(
        image_id=image.image_id,
        url=base,
        thumbnail_url=f"{base}/thumbnail",
        width=image.width,
        height=image.height,
        file_size=image.file_size,
        mime_type=image.mime_type,
        favorite=image.favorite,
        tags=tags,
        seed=seed,
        created_at=image.created_at,
        source_image_id=image.source_image_id,
    )


def task_public(
    task: Row[Any], images: list[ImagePublic], estimated_seconds: int | None
) -> TaskPublic:
    """A task row of reads.TASK_COLUMNS, shaped for the API. Its typed columns already hold
    what the fields take, so it is not validated again: a fifth of a page of tasks' cost."""
    error = (
        TaskError(code=task.error_code, message=task.error_message) if task.error_message else None
    )
    return TaskPublic.model_construct(
        task_id=task.task_id,
        owner=task.owner_name,
        status=task.status,
        progress=task.progress,
        **{name: getattr(task, name) for name in COLUMNS},
        params=task.params or {},
        images=images,
        error=error,
        retry_count=task.retry_count,
        created_at=task.created_at,
        updated_at=task.updated_at,
        started_at=task.started_at,
        completed_at=task.completed_at,
        estimated_seconds=estimated_seconds,
    )


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
