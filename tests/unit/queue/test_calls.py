"""A paid call's row when its task is run again (never pay twice), the upstream budget, and
the request a provider is given."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from volcimage.catalog.models import load_catalog
from volcimage.providers.base import ImageRequest
from volcimage.queue.calls import STREAM_CUT_OFF, budget_wait, image_request, reopen
from volcimage.tasks.models import CallState, UpstreamCall
from volcimage.tasks.params import TaskParams


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


def test_a_slot_asks_with_the_task_parameters_its_own_seed_and_the_model_upstream_id() -> None:
    model = load_catalog().get("seedream-3.0")
    params = TaskParams(
        prompt="a cat",
        negative_prompt="blurry",
        model=model.id,
        width=1024,
        height=768,
        num_images=3,
        steps=30,
        scale=2.5,
        seed=42,
        watermark=True,
    )
    asked = image_request(params, model, 2, ("data:image/png;base64,AA==",), 300)
    assert asked == ImageRequest(
        upstream_model=model.upstream_id,
        prompt="a cat",
        width=1024,
        height=768,
        seed=44,
        scale=2.5,
        steps=30,
        negative_prompt="blurry",
        watermark=True,
        upstream_params=model.upstream_params,
        reference_images=("data:image/png;base64,AA==",),
        group_size=0,
        timeout=300,
    )
    group = params.model_copy(update={"group": True, "seed": None})
    asked = image_request(group, model, 0, (), 900)
    assert asked.group_size == 3 and asked.seed is None
