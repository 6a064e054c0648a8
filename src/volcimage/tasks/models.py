"""Tables: `tasks` (also the queue), `upstream_calls` (one per paid call), `model_pauses`,
`images`, `user_tags`, `uploads`, `audit_log`. Tasks and uploads belong to a user when
accounts are on (`owner_id`)."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from volcimage.auth import models as _users  # noqa: F401 - the `users` table the owners are in
from volcimage.core.db import Base, UTCDateTime, utcnow


class TaskStatus(enum.StrEnum):
    PENDING = "pending"
    PROCESSING = "processing"
    RETRYING = "retrying"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


FINAL_STATUSES = (TaskStatus.COMPLETED, TaskStatus.FAILED, TaskStatus.CANCELLED)


class CallState(enum.StrEnum):
    CALLING = "calling"  # request sent, answer not yet committed
    RECEIVED = "received"  # answer committed; files not yet stored
    STORED = "stored"  # every image of the answer is stored
    FAILED = "failed"  # the upstream refused; nothing billed


class Task(Base):
    __tablename__ = "tasks"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    task_id: Mapped[str] = mapped_column(String(36), unique=True)
    status: Mapped[str] = mapped_column(String(20), default=TaskStatus.PENDING)
    prompt: Mapped[str] = mapped_column(Text)
    negative_prompt: Mapped[str | None] = mapped_column(Text)
    model: Mapped[str] = mapped_column(String(50))
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    num_images: Mapped[int] = mapped_column(Integer, default=1)
    steps: Mapped[int | None] = mapped_column(Integer)
    scale: Mapped[float | None] = mapped_column(Float)
    seed: Mapped[int | None] = mapped_column(Integer)
    owner_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    params: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    error_message: Mapped[str | None] = mapped_column(Text)
    error_code: Mapped[str | None] = mapped_column(String(100))
    retry_count: Mapped[int] = mapped_column(Integer, default=0)
    progress: Mapped[int] = mapped_column(Integer, default=0)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    run_after: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    lease_owner: Mapped[str | None] = mapped_column(String(100))
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # made or last retried: the daily budgets count images by the day they were queued
    admitted_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # last claimed: the claim reserves the task's images of its model's images a minute
    claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    images: Mapped[list[Image]] = relationship(
        back_populates="task", order_by="Image.position", cascade="all, delete-orphan"
    )
    calls: Mapped[list[UpstreamCall]] = relationship(
        back_populates="task", order_by="UpstreamCall.slot", cascade="all, delete-orphan"
    )

    __table_args__ = (
        Index("idx_status", "status"),
        Index("idx_created_at", "created_at"),
        Index("idx_tasks_queue", "status", "run_after"),
        Index("idx_tasks_owner", "owner_id", "created_at"),
        Index("idx_tasks_admitted_at", "admitted_at"),
        Index("idx_tasks_claimed_at", "claimed_at"),
    )


class UpstreamCall(Base):
    """One billed upstream request: committed before and after the call, never repeated blindly."""

    __tablename__ = "upstream_calls"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    task_pk: Mapped[int] = mapped_column(ForeignKey("tasks.id", ondelete="CASCADE"))
    slot: Mapped[int] = mapped_column(Integer)
    state: Mapped[str] = mapped_column(String(20), default=CallState.CALLING)
    provider: Mapped[str] = mapped_column(String(20))
    upstream_task_id: Mapped[str | None] = mapped_column(String(100))
    request_id: Mapped[str | None] = mapped_column(String(100))
    response: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    error_code: Mapped[str | None] = mapped_column(String(100))
    images_billed: Mapped[int] = mapped_column(Integer, default=0)
    lost_calls: Mapped[int] = mapped_column(Integer, default=0)  # died mid-call: maybe billed
    called_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # last paid call made
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    task: Mapped[Task] = relationship(back_populates="calls")

    __table_args__ = (
        UniqueConstraint("task_pk", "slot"),
        Index("idx_calls_called_at", "called_at"),
    )


class ModelPause(Base):
    """A model the upstream refused for a limit (a 429): no task of it is claimed before
    `until`, by any worker; other models go on."""

    __tablename__ = "model_pauses"

    model: Mapped[str] = mapped_column(String(50), primary_key=True)
    until: Mapped[datetime] = mapped_column(UTCDateTime)
    code: Mapped[str] = mapped_column(String(100))


class Image(Base):
    __tablename__ = "images"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    image_id: Mapped[str] = mapped_column(String(36), unique=True)
    task_pk: Mapped[int] = mapped_column("task_id", ForeignKey("tasks.id", ondelete="CASCADE"))
    position: Mapped[int] = mapped_column(Integer)
    file_path: Mapped[str] = mapped_column(String(255))
    thumbnail_path: Mapped[str] = mapped_column(String(255))
    content_hash: Mapped[str] = mapped_column(String(64))
    mime_type: Mapped[str] = mapped_column(String(50))
    file_size: Mapped[int] = mapped_column(Integer)
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    favorite: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # what an editing tool made this from: an image's or an upload's id (lineage)
    source_image_id: Mapped[str | None] = mapped_column(String(36))

    task: Mapped[Task] = relationship(back_populates="images")
    tags: Mapped[list[UserTag]] = relationship(
        cascade="all, delete-orphan", lazy="selectin", order_by="UserTag.tag_name"
    )

    __table_args__ = (
        UniqueConstraint("task_id", "position"),
        Index("idx_images_hash", "content_hash"),
    )


class UserTag(Base):
    __tablename__ = "user_tags"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    image_pk: Mapped[int] = mapped_column("image_id", ForeignKey("images.id", ondelete="CASCADE"))
    tag_name: Mapped[str] = mapped_column(String(50))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    __table_args__ = (
        UniqueConstraint("image_id", "tag_name"),
        Index("idx_tag_name", "tag_name"),
    )


class Upload(Base):
    """A reference image a user sent, cleaned (see storage/uploads.py), kept by content hash."""

    __tablename__ = "uploads"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    upload_id: Mapped[str] = mapped_column(String(36), unique=True)
    owner_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    content_hash: Mapped[str] = mapped_column(String(64))
    file_path: Mapped[str] = mapped_column(String(255))
    thumbnail_path: Mapped[str] = mapped_column(String(255))
    mime_type: Mapped[str] = mapped_column(String(50))
    file_size: Mapped[int] = mapped_column(Integer)
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    # the colour mode kept: a mask must be single-channel or have alpha (None: before 0010)
    mode: Mapped[str | None] = mapped_column(String(8))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    __table_args__ = (
        Index("idx_uploads_hash", "content_hash"),
        Index("idx_uploads_owner", "owner_id"),
    )
