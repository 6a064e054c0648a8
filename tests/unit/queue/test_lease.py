"""How an attempt ends (settle), the retry backoff, and a task's slots."""

from __future__ import annotations

import asyncio
import errno

import pytest

from volcimage.core.config import load_settings
from volcimage.core.errors import UpstreamError
from volcimage.providers.base import UpstreamImage
from volcimage.queue.lease import (
    GROUP_SHORT,
    Finish,
    LeaseLost,
    Retry,
    SlotOutcome,
    TaskSnapshot,
    backoff_seconds,
    settle,
)
from volcimage.tasks.models import Task, TaskStatus

SERVER_ERROR = UpstreamError("Server busy", upstream_code="InternalServiceError", retryable=True)
REFUSED = UpstreamError("Prompt refused", upstream_code="InputTextSensitive", retryable=False)
RATE_LIMITED = UpstreamError(
    "Slow down", upstream_code="RateLimitExceeded", retryable=True, retry_after=30
)
DISK_FULL = OSError(errno.ENOSPC, "No space left on device")


def ended(*results: object, asked: int = 2, retry_count: int = 0) -> Retry | Finish:
    return settle(results, asked=asked, retry_count=retry_count, max_retries=3)


def stored(count: int, cut_off: str | None = None) -> SlotOutcome:
    return SlotOutcome(stored=count, refused=[], cut_off=cut_off)


def test_every_image_stored_completes_without_error() -> None:
    assert ended(stored(1), stored(1)) == Finish(TaskStatus.COMPLETED)


def test_a_retryable_failure_is_retried_with_the_upstreams_delay() -> None:
    assert ended(stored(1), RATE_LIMITED) == Retry("RateLimitExceeded", "Slow down", 30)
    assert ended(SERVER_ERROR, retry_count=2) == Retry("InternalServiceError", "Server busy", None)


def test_a_full_disk_is_retried_as_a_storage_error() -> None:
    assert ended(DISK_FULL, stored(1)) == Retry(
        "StorageError", "Could not write the image (No space left on device)", None
    )


def test_a_retryable_failure_is_retried_before_a_final_one() -> None:
    assert ended(REFUSED, SERVER_ERROR) == Retry("InternalServiceError", "Server busy", None)


def test_out_of_retries_keeps_what_was_made() -> None:
    assert ended(stored(1), SERVER_ERROR, retry_count=3) == Finish(
        TaskStatus.COMPLETED,
        code="InternalServiceError",
        message="1 of 2 images made; Server busy (gave up after 3 retries)",
    )
    assert ended(SERVER_ERROR, SERVER_ERROR, retry_count=3) == Finish(
        TaskStatus.FAILED,
        code="InternalServiceError",
        message="Server busy (gave up after 3 retries)",
    )


def test_a_final_failure_ends_the_task_at_once() -> None:
    assert ended(REFUSED, stored(0)) == Finish(
        TaskStatus.FAILED, code="InputTextSensitive", message="Prompt refused"
    )
    assert ended(REFUSED, stored(1)) == Finish(
        TaskStatus.COMPLETED,
        code="InputTextSensitive",
        message="1 of 2 images made; Prompt refused",
    )


OUTPUT_REFUSED = UpstreamError(
    "Post Img Risk Not Pass", upstream_code="50511", retryable=True, once=True
)


def test_an_output_refusal_is_retried_once_then_final() -> None:
    first = settle([OUTPUT_REFUSED], asked=1, retry_count=0, max_retries=3)
    assert first == Retry("50511", "Post Img Risk Not Pass", None)
    again = settle([OUTPUT_REFUSED], asked=1, retry_count=1, max_retries=3, retried_for="50511")
    assert again == Finish(TaskStatus.FAILED, code="50511", message="Post Img Risk Not Pass")


def test_an_output_refusal_after_a_retry_for_something_else_is_retried() -> None:
    after_a_limit = settle(
        [OUTPUT_REFUSED], asked=1, retry_count=1, max_retries=3, retried_for="50429"
    )
    assert isinstance(after_a_limit, Retry)


def test_a_limit_is_retried_however_often_it_came_before() -> None:
    end = settle(
        [RATE_LIMITED], asked=1, retry_count=2, max_retries=3, retried_for="RateLimitExceeded"
    )
    assert isinstance(end, Retry) and end.retry_after == 30


def test_images_the_upstream_refused_are_counted_in_the_error() -> None:
    refusal = UpstreamImage(error_code="OutputImageSensitive", error_message="not shown")
    some = SlotOutcome(stored=1, refused=[refusal])
    none = SlotOutcome(stored=0, refused=[refusal])
    said = "1 image(s) refused by the upstream: not shown"
    assert ended(some, stored(0)) == Finish(
        TaskStatus.COMPLETED, code="OutputImageSensitive", message=said
    )
    assert ended(none, asked=1) == Finish(
        TaskStatus.FAILED, code="OutputImageSensitive", message=said
    )


def test_a_short_group_says_why() -> None:
    assert ended(stored(2), asked=3) == Finish(
        TaskStatus.COMPLETED, code="partial", message=f"2 of 3 images made: {GROUP_SHORT}"
    )
    cut = "the stream was cut off (reset)"
    assert ended(stored(1, cut_off=cut), asked=3) == Finish(
        TaskStatus.COMPLETED, code="partial", message=f"1 of 3 images made: {cut}"
    )
    assert ended(stored(0), asked=3) == Finish(
        TaskStatus.FAILED, code="NoImage", message=f"0 of 3 images made: {GROUP_SHORT}"
    )


@pytest.mark.parametrize("stop", [LeaseLost(), asyncio.CancelledError()])
def test_a_lost_lease_or_a_cancel_is_not_an_outcome(stop: BaseException) -> None:
    with pytest.raises(type(stop)):
        ended(ValueError("a bug too"), stop, SERVER_ERROR)


def test_a_bug_is_raised_not_recorded_as_the_upstreams() -> None:
    with pytest.raises(KeyError):
        ended(SERVER_ERROR, KeyError("model"))


def test_backoff_grows_with_jitter_and_honours_retry_after() -> None:
    settings = load_settings(_env_file=None, RETRY_BASE_DELAY=1, RETRY_MAX_DELAY=8)
    for attempt, ceiling in [(0, 1), (1, 2), (2, 4), (5, 8)]:
        delays = {backoff_seconds(settings, attempt, None) for _ in range(20)}
        assert all(ceiling / 2 <= d <= ceiling for d in delays)
        assert len(delays) > 1
    assert backoff_seconds(settings, 0, 30) == 30
    assert backoff_seconds(settings, 0, 86400) == backoff_seconds(settings, 0, 1e12) == 600


def snapshot(num_images: int, **params: object) -> TaskSnapshot:
    task = Task(
        id=1,
        task_id="t",
        prompt="a cat",
        model="m",
        width=1024,
        height=1024,
        num_images=num_images,
        seed=7,
        params=dict(params),
        attempts=1,
        retry_count=0,
    )
    return TaskSnapshot.of(task)


def test_a_group_is_one_paid_call_and_other_tasks_one_per_image() -> None:
    assert snapshot(4).slots == 4 and not snapshot(4).params.group
    assert snapshot(4, group=True).slots == 1 and snapshot(4, group=True).params.group


def test_a_limit_the_upstream_gave_marks_the_retry_for_the_whole_model() -> None:
    ipm = UpstreamError(
        "IPM", upstream_code="ModelAccountIpmRateLimitExceeded", retryable=True, http_status=429
    )
    limited = ended(ipm)
    assert isinstance(limited, Retry) and limited.limited and limited.retry_after is None
    passing = ended(SERVER_ERROR)
    assert isinstance(passing, Retry) and not passing.limited
