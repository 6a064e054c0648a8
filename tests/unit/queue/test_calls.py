"""A paid call's row when its task is run again (never pay twice), and the upstream budget."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from volcimage.queue.calls import STREAM_CUT_OFF, budget_wait, reopen
from volcimage.tasks.models import CallState, UpstreamCall


def call(state: CallState, **fields: Any) -> UpstreamCall:
    return UpstreamCall(task_pk=1, slot=0, provider="ark", state=state, lost_calls=0, **fields)


def test_an_answered_call_is_never_made_again() -> None:
    for state in (CallState.RECEIVED, CallState.STORED):
        row = call(state, response={"images": []})
        assert not reopen(row, "t")
        assert row.state == state and row.lost_calls == 0


def test_a_cut_off_stream_keeps_what_it_delivered() -> None:
    delivered = {"images": [{"url": "u"}], "partial": True}
    row = call(CallState.CALLING, response=delivered)
    assert not reopen(row, "t")
    assert row.state == CallState.RECEIVED
    assert row.response == {**delivered, "cut_off": STREAM_CUT_OFF}
    assert row.lost_calls == 0


def test_a_submitted_job_is_polled_again_not_paid_again() -> None:
    row = call(CallState.CALLING, upstream_task_id="job-1")
    assert not reopen(row, "t")
    assert row.state == CallState.CALLING and row.lost_calls == 0


def test_a_call_whose_process_died_is_counted_as_possibly_billed_and_made_again() -> None:
    row = call(CallState.CALLING)
    assert reopen(row, "t")
    assert row.state == CallState.CALLING and row.lost_calls == 1


def test_a_refused_call_is_made_again_from_a_clean_row() -> None:
    row = call(CallState.FAILED, error_code="InternalServiceError")
    assert reopen(row, "t")
    assert row.state == CallState.CALLING and row.error_code is None and row.lost_calls == 0


def test_the_budget_waits_until_the_oldest_counted_call_leaves_the_minute() -> None:
    since = datetime(2025, 1, 1, 12, 0, tzinfo=UTC)
    made = [since + timedelta(seconds=s) for s in (5, 20, 40)]
    assert budget_wait(made, 4, since) == 0.0
    assert budget_wait(made, 3, since) == 5.0  # the oldest of the last three
    assert budget_wait(made, 2, since) == 20.0
    assert budget_wait([since, since], 2, since) == 0.05  # never a busy loop
