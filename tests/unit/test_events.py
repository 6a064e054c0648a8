"""The event bus: a slow reader never blocks the runner, and is told when it lost events."""

from __future__ import annotations

from volcimage.auth.visibility import Caller, event_for
from volcimage.events.bus import MISSED, EventBus


async def test_a_slow_reader_starts_over_with_the_newest_events() -> None:
    bus = EventBus(queue_size=3)
    async with bus.subscribe() as queue:
        for n in range(5):
            bus.deliver({"type": "task.updated", "owner": None, "n": n})
        got = [queue.get_nowait() for _ in range(queue.qsize())]
    assert got == [MISSED] + [{"type": "task.updated", "owner": None, "n": n} for n in (3, 4)]


def test_everyone_is_told_of_missed_events_and_only_of_their_own_tasks() -> None:
    user = Caller(name="alice", user_id=2, is_admin=False)
    assert event_for(user, MISSED) == MISSED
    assert event_for(user, {"type": "task.updated", "owner": 3, "task": {}}) is None
    assert event_for(user, {"type": "task.updated", "owner": 2, "task": {}}) == {
        "type": "task.updated",
        "task": {},
    }
