"""How each upstream error code is retried: the one table for both APIs, from their documents
(Ark: the error-code page, 82379/1299023; Visual: 85621/1756900), as docs/volcengine-api.md
quotes them. Retrying a refusal the upstream will repeat pays again for nothing."""

from __future__ import annotations

from enum import StrEnum

from volcimage.core.errors import UpstreamError


class Retry(StrEnum):
    NEVER = "never"  # asking again gets the same answer, or pays again for nothing
    ONCE = "once"  # an output refusal: a new sample may pass, a second refusal will not
    BACKOFF = "backoff"  # a limit or a passing fault: wait, then ask again


# Visual API `code`s (the answer's own, inside an HTTP 200/4xx/5xx).
VISUAL: dict[int, Retry] = {
    50411: Retry.NEVER,  # Pre Img Risk Not Pass: an input image refused
    50412: Retry.NEVER,  # Text Risk Not Pass: the prompt refused
    50413: Retry.NEVER,  # Post Text Risk Not Pass: the prompt refused (sensitive words, IP)
    50511: Retry.ONCE,  # Post Img Risk Not Pass: the output refused
    50512: Retry.NEVER,  # the output text refused
    50518: Retry.NEVER,  # an input image refused (IP)
    50519: Retry.ONCE,  # Post Img Risk Not Pass (IP): the output refused
    50520: Retry.NEVER,  # the check service failed
    50521: Retry.NEVER,
    50522: Retry.NEVER,
    50429: Retry.BACKOFF,  # QPS limit
    50430: Retry.BACKOFF,  # concurrency limit
    50500: Retry.NEVER,  # Internal Error: documented "no retry needed"
    50501: Retry.NEVER,  # Internal RPC Error: documented "no retry needed"
}
VISUAL_LIMITS = frozenset(code for code, retry in VISUAL.items() if retry is Retry.BACKOFF)

# Ark `error.code`s whose retry is not told by the HTTP status alone.
ARK: dict[str, Retry] = {
    "InputTextSensitiveContentDetected": Retry.NEVER,
    "InputImageSensitiveContentDetected": Retry.NEVER,
    "OutputImageSensitiveContentDetected": Retry.ONCE,
    "OutputTextSensitiveContentDetected": Retry.ONCE,
    "QuotaExceeded": Retry.NEVER,  # a 429 that waiting does not end: the account's quota
    "SetLimitExceeded": Retry.NEVER,  # a 429 that waiting does not end: the spending cap
}


def visual(code: int) -> Retry:
    """An unknown Visual code is final: a retry would pay again for the same refusal."""
    return VISUAL.get(code, Retry.NEVER)


def ark(code: str, status: int) -> Retry:
    """By the code where the documents name it, else by the status: 429 and 5xx wait."""
    if code in ARK:
        return ARK[code]
    return Retry.BACKOFF if status == 429 or status >= 500 else Retry.NEVER


def retry_fields(retry: Retry) -> dict[str, bool]:
    """The `UpstreamError` flags for a policy."""
    return {"retryable": retry is not Retry.NEVER, "once": retry is Retry.ONCE}


def is_limit(error: UpstreamError) -> bool:
    """A refusal for a rate or concurrency limit that waiting ends (Ark's retryable 429s,
    Visual's 50429/50430): the model is paused, not only the task."""
    visual_limit = error.upstream_code in {str(code) for code in VISUAL_LIMITS}
    return error.retryable and (error.http_status == 429 or visual_limit)
