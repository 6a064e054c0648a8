"""Event bus: task state changes fanned out to SSE subscribers and runners — in this process,
and through the relay (PostgreSQL LISTEN/NOTIFY, `relay.py`) to every other process."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any, Protocol

Event = dict[str, Any]
# Told to subscribers that may have lost events (a slow reader, a relay reconnecting): read
# the tasks again. It names no task, so everyone may see it.
MISSED: Event = {"type": "events.missed"}
# A user's sign-ins or role changed (owner: their id; None: the API key's sign-ins): open
# streams of theirs check their session again. Never shown to anyone.
ACCESS_CHANGED = "access.changed"


class Relay(Protocol):
    def send(self, event: Event) -> None: ...


class EventBus:
    def __init__(self, queue_size: int = 256) -> None:
        self._subscribers: set[asyncio.Queue[Event]] = set()
        self._queue_size = queue_size
        self.task_created = asyncio.Event()
        # Runners in this process stop a task they are running at once (others see it at
        # their next heartbeat).
        self.cancel_listeners: list[Callable[[int], None]] = []
        self.relay: Relay | None = None

    @property
    def watched(self) -> bool:
        """Whether anyone in this process (a page, a stream) is subscribed."""
        return bool(self._subscribers)

    def access_changed(self, user_id: int | None) -> None:
        self.publish({"type": ACCESS_CHANGED, "owner": user_id})

    def request_cancel(self, task_pk: int) -> None:
        self.publish({"type": "task.cancel_requested", "task_pk": task_pk})

    def publish(self, event: Event) -> None:
        """To this process's subscribers and, through the relay, to every other process."""
        self.deliver(event)
        if self.relay is not None:
            self.relay.send(event)

    def deliver(self, event: Event) -> None:
        """To this process's subscribers only."""
        if event.get("type") == "task.cancel_requested":
            for listener in self.cancel_listeners:
                listener(event["task_pk"])
            return
        if event.get("type") == "task.created":
            self.task_created.set()
        for queue in self._subscribers:
            if queue.full():  # a slow reader never blocks the runner: it starts over instead
                while not queue.empty():
                    queue.get_nowait()
                queue.put_nowait(MISSED)
            queue.put_nowait(event)

    @contextlib.asynccontextmanager
    async def subscribe(self) -> AsyncIterator[asyncio.Queue[Event]]:
        queue: asyncio.Queue[Event] = asyncio.Queue(self._queue_size)
        self._subscribers.add(queue)
        try:
            yield queue
        finally:
            self._subscribers.discard(queue)


IDLE: dict[str, Any] = {"type": "idle"}
