"""Who is asking, and what they may see: the one place for visibility rules (rows, events,
admin-only actions)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import ColumnElement, false
from sqlalchemy.orm import InstrumentedAttribute

from volcimage.core.errors import Forbidden
from volcimage.events.bus import ACCESS_CHANGED, IDLE, MISSED, Event

if TYPE_CHECKING:
    from starlette.requests import HTTPConnection


@dataclass(frozen=True)
class Caller:
    """Who is asking. Everyone sees everything unless accounts are on: then a user sees only
    their own tasks, images and uploads, and an admin (or the API key) sees all."""

    name: str  # for the audit log: a username, "api-key", "session", "anonymous" …
    user_id: int | None = None
    is_admin: bool = False  # fail closed: an admin is only ever made on purpose
    # Signed in with the session cookie: a sign-out, or a change to the user, ends it
    by_cookie: bool = False


ANONYMOUS = Caller("anonymous", is_admin=True)  # open mode: everyone may do everything
GUEST = Caller("anonymous")  # not signed in where signing in is required


def get_caller(request: HTTPConnection) -> Caller:
    """Set by the access middleware (`auth/access.py`) for every request; a guest without it."""
    return cast(Caller, getattr(request.state, "caller", GUEST))


def visible(caller: Caller, owner: InstrumentedAttribute[int | None]) -> list[ColumnElement[bool]]:
    """Conditions on `owner` (Task.owner_id, Upload.owner_id): none for a caller who sees
    everything, else the caller's own rows only."""
    if caller.is_admin:
        return []
    return [owner == caller.user_id] if caller.user_id is not None else [false()]


def personal(caller: Caller, owner: InstrumentedAttribute[int | None]) -> list[ColumnElement[bool]]:
    """Conditions for personal rows (saved presets): the caller's own, admins included (an
    admin's view of all would mix everyone's into theirs); with no user (accounts off, or the
    API key), the one shared list."""
    if caller.user_id is None:
        return [owner.is_(None)]
    return [owner == caller.user_id]


def acted_by(caller: Caller, actor: InstrumentedAttribute[str]) -> list[ColumnElement[bool]]:
    """Conditions on the audit log: everyone's entries for an admin, else the caller's own."""
    return [] if caller.is_admin else [actor == caller.name]


def require_admin(caller: Caller, what: str) -> None:
    if not caller.is_admin:
        raise Forbidden(f"Only an admin may {what}")


def event_for(caller: Caller, event: dict[str, Any]) -> dict[str, Any] | None:
    """The event as the caller may see it, or None if it is about someone else's task."""
    if event["type"] == MISSED["type"]:
        return event
    if event["type"] in (ACCESS_CHANGED, IDLE["type"]):
        return None
    if not caller.is_admin and event.get("owner") != caller.user_id:
        return None
    return {k: v for k, v in event.items() if k != "owner"}


def needs_recheck(caller: Caller, event: Event) -> bool:
    """Whether an open stream must check its session again: its user's access changed,
    events (such a notice among them) may have been lost, or it has been idle a while."""
    if not caller.by_cookie:
        return False
    if event["type"] == ACCESS_CHANGED:
        return bool(event.get("owner") == caller.user_id)
    return event["type"] in (MISSED["type"], "idle")
