"""The product's exception tree, mapped to HTTP in one place (`app.py`).

VolcImageError
├── ValidationError      400 validation_error (bad input; `details` says which field)
├── Unauthorized         401 unauthorized
├── Forbidden            403 forbidden (signed in, but not allowed)
├── NotFound             404 not_found
├── Conflict             409 conflict (the resource is in the wrong state)
├── PayloadTooLarge      413 payload_too_large (the request body is over its route's limit)
├── RateLimited          429 rate_limit_exceeded (with `retry_after` seconds)
├── ServiceUnavailable   503 service_unavailable (the database or storage, for a while)
└── UpstreamError        a VolcEngine call failed; `retryable` decides the queue's next step
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from starlette.responses import JSONResponse

REDACTED = "***"
# Credential shapes an upstream may echo back: a whole Authorization header's value, a bearer
# token, a V4 signature's credential and signature, a key or token field.
_CREDENTIAL_SHAPES = re.compile(
    r"(?i)(authorization[\"']?\s*[:=]\s*[\"']?)"
    r"(?:[\w-]+\s+)?[^\s\"',}]+(?:\s*,\s*[\w-]+=[^\s\"',}]+)*"
    r"|(bearer\s+)[\w.~+/=-]+"
    r"|((?:credential|signature|x-api-key|api[-_]?key|access[-_]?key(?:[-_]?id)?"
    r"|secret[-_]?(?:access[-_]?)?key|token)[\"']?\s*[:=]\s*[\"']?)[\w.~+/=-]+"
)
_secrets: set[str] = set()


def hide_secrets(values: Iterable[str]) -> None:
    """Values (the configured keys) that `redact` removes from every upstream text."""
    _secrets.update(v for v in values if len(v) >= 4)


def redact(text: str) -> str:
    """Upstream text without credentials: an upstream may echo the request's headers."""
    for secret in sorted(_secrets, key=len, reverse=True):
        text = text.replace(secret, REDACTED)
    return _CREDENTIAL_SHAPES.sub(
        lambda m: next(g for g in m.groups() if g is not None) + REDACTED, text
    )


class VolcImageError(Exception):
    status_code = 500
    code = "internal_error"

    def __init__(
        self,
        message: str,
        details: dict[str, Any] | None = None,
        *,
        code: str | None = None,
        status_code: int | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or {}
        if code:
            self.code = code
        if status_code:
            self.status_code = status_code


class ValidationError(VolcImageError):
    status_code = 400
    code = "validation_error"


class NotFound(VolcImageError):
    status_code = 404
    code = "not_found"


class Conflict(VolcImageError):
    status_code = 409
    code = "conflict"


class PayloadTooLarge(VolcImageError):
    status_code = 413
    code = "payload_too_large"


class Unauthorized(VolcImageError):
    status_code = 401
    code = "unauthorized"


class Forbidden(VolcImageError):
    status_code = 403
    code = "forbidden"


class RateLimited(VolcImageError):
    status_code = 429
    code = "rate_limit_exceeded"

    def __init__(self, message: str, retry_after: int, code: str | None = None) -> None:
        super().__init__(message, code=code)
        self.retry_after = retry_after


class ServiceUnavailable(VolcImageError):
    status_code = 503
    code = "service_unavailable"


class UpstreamError(VolcImageError):
    """A failed upstream call, classified once in the provider layer. Its text may quote the
    upstream, so it is redacted here, before anything stores or shows it."""

    status_code = 502
    code = "upstream_error"

    def __init__(
        self,
        message: str,
        *,
        upstream_code: str,
        retryable: bool,
        retry_after: float | None = None,
        http_status: int | None = None,
        job_gone: bool = False,
        once: bool = False,
    ) -> None:
        message = redact(message)
        super().__init__(message)
        # once: retried at most once in a row (an output refusal: a new sample may pass)
        self.once = once
        # job_gone: the upstream's asynchronous job is over (failed or expired); a retry must
        # submit a new one instead of polling this one again.
        self.job_gone = job_gone
        self.upstream_code = redact(upstream_code)
        self.retryable = retryable
        self.retry_after = retry_after
        self.http_status = http_status


def body_of(exc: VolcImageError) -> dict[str, Any]:
    """The JSON body of an error answer: `{error, message}` plus `retry_after` or `details`."""
    body: dict[str, Any] = {"error": exc.code, "message": exc.message}
    if isinstance(exc, RateLimited):
        body["retry_after"] = exc.retry_after
    elif exc.status_code == 400 or exc.details:
        body["details"] = exc.details
    return body


def answer(exc: VolcImageError, headers: dict[str, str] | None = None) -> JSONResponse:
    """The one way an error reaches a client: its body, its status, Retry-After when limited."""
    # imported here: the CLI's commands and the worker raise these errors but answer no request,
    # and importing FastAPI costs ~0.1–0.15 s of CPU
    from fastapi.encoders import jsonable_encoder
    from starlette.responses import JSONResponse

    headers = dict(headers or {})
    if isinstance(exc, RateLimited):
        headers["Retry-After"] = str(exc.retry_after)
    return JSONResponse(jsonable_encoder(body_of(exc)), exc.status_code, headers=headers or None)


def invalid_input(errors: Sequence[Any]) -> ValidationError:
    """pydantic's errors as one ValidationError whose message names the first bad field."""
    found = [
        {
            "field": ".".join(str(p) for p in err["loc"] if p != "body") or "body",
            "message": err["msg"],
            "type": err["type"],
        }
        for err in errors
    ]
    first = found[0] if found else {"field": "body", "message": "invalid", "type": ""}
    if first["type"] == "json_invalid":
        message = "The request body is not valid JSON"
    elif first["field"] == "body":
        message = first["message"]
    else:
        message = f"{first['field']}: {first['message'].removeprefix('Value error, ')}"
    return ValidationError(message, {"errors": found})


ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"description": "Invalid input: `{error, message, details}`"},
    404: {"description": "Not found: `{error, message}`"},
}


STATE_ERRORS = {**ERRORS, 409: {"description": "The task is in the wrong state for this"}}
