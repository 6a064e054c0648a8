"""The retry policy of each upstream error code, as the providers' documents give it."""

from __future__ import annotations

import pytest

from volcimage.core.errors import UpstreamError
from volcimage.providers import policy
from volcimage.providers.policy import Retry


@pytest.mark.parametrize(
    ("code", "retry"),
    [
        (50411, Retry.NEVER),  # input image refused: final
        (50412, Retry.NEVER),  # input text refused: final
        (50413, Retry.NEVER),  # sensitive or copyrighted words: final
        (50511, Retry.ONCE),  # output refused: a new sample may pass
        (50519, Retry.ONCE),  # output refused (copyright): a new sample may pass
        (50429, Retry.BACKOFF),  # QPS limit
        (50430, Retry.BACKOFF),  # concurrency limit
        (50500, Retry.NEVER),  # internal error: "no retry needed"
        (50501, Retry.NEVER),  # internal RPC error: "no retry needed"
        (50999, Retry.NEVER),  # a code no document names: asking again may pay again
    ],
)
def test_visual_codes(code: int, retry: Retry) -> None:
    assert policy.visual(code) is retry


@pytest.mark.parametrize(
    ("code", "status", "retry"),
    [
        ("InputTextSensitiveContentDetected", 400, Retry.NEVER),
        ("InputImageSensitiveContentDetected", 400, Retry.NEVER),
        ("OutputImageSensitiveContentDetected", 400, Retry.ONCE),
        ("ModelAccountIpmRateLimitExceeded", 429, Retry.BACKOFF),
        ("ServerOverloaded", 429, Retry.BACKOFF),
        ("QuotaExceeded", 429, Retry.NEVER),  # waiting does not end it
        ("SetLimitExceeded", 429, Retry.NEVER),
        ("InternalServiceError", 500, Retry.BACKOFF),
        ("InvalidParameter", 400, Retry.NEVER),
        ("AuthenticationError", 401, Retry.NEVER),
        ("ModelNotOpen", 404, Retry.NEVER),
    ],
)
def test_ark_codes(code: str, status: int, retry: Retry) -> None:
    assert policy.ark(code, status) is retry


def test_the_flags_an_error_carries() -> None:
    assert policy.retry_fields(Retry.NEVER) == {"retryable": False, "once": False}
    assert policy.retry_fields(Retry.ONCE) == {"retryable": True, "once": True}
    assert policy.retry_fields(Retry.BACKOFF) == {"retryable": True, "once": False}


@pytest.mark.parametrize(
    ("code", "status", "retryable", "limit"),
    [
        ("ModelAccountIpmRateLimitExceeded", 429, True, True),  # Ark: images a minute
        ("50429", 429, True, True),  # Visual: QPS
        ("50430", 200, True, True),  # Visual: concurrency, whatever the HTTP status
        ("QuotaExceeded", 429, False, False),  # waiting does not end it
        ("InternalServiceError", 500, True, False),  # a passing fault, not a limit
    ],
)
def test_a_limit_is_a_retryable_429_or_a_visual_limit_code(
    code: str, status: int, retryable: bool, limit: bool
) -> None:
    error = UpstreamError("x", upstream_code=code, retryable=retryable, http_status=status)
    assert policy.is_limit(error) is limit
