"""What a request that failed outside the product's own errors answers: 503 with Retry-After
when the database or storage is down, busy or saturated (the request may simply be repeated),
else a 500. Both in the error shape, both with the cause logged, and inside the CORS and
security-header middleware, so those headers are on them too."""

from __future__ import annotations

import logging
import sys

from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.responses import JSONResponse
from starlette.types import Message, Receive, Scope, Send

from volcimage.asgi import HttpMiddleware
from volcimage.errors import ServiceUnavailable, VolcImageError, body_of

log = logging.getLogger("volcimage.app")

RETRY_AFTER_SECONDS = 2
# PostgreSQL SQLSTATEs that pass: connection exceptions, insufficient resources, transaction
# rollbacks (deadlock, serialization), shutdowns under way, and a database that is read-only
# for a while (a failover's standby, default_transaction_read_only)
TRANSIENT_SQLSTATES = ("08", "53", "40", "57P", "25006")
TRANSIENT_SQLITE = ("SQLITE_BUSY", "SQLITE_LOCKED")


def is_outage(exc: BaseException) -> bool:
    """Whether the database or storage failed for a while, not for good."""
    if isinstance(exc, OSError | PoolTimeout) or _s3_unreachable(exc):
        return not isinstance(exc, FileNotFoundError | PermissionError | IsADirectoryError)
    if not isinstance(exc, DBAPIError):
        return False
    if exc.connection_invalidated:
        return True
    sqlstate = str(getattr(exc.orig, "sqlstate", None) or "")
    sqlite_error = str(getattr(exc.orig, "sqlite_errorname", None) or "")
    return sqlstate.startswith(TRANSIENT_SQLSTATES) or sqlite_error in TRANSIENT_SQLITE


def _s3_unreachable(exc: BaseException) -> bool:
    """botocore's ConnectionError. botocore (the optional S3 storage) is loaded only with that
    storage, and none of its errors can exist before, so it is looked up, never imported."""
    botocore = sys.modules.get("botocore.exceptions")
    return botocore is not None and isinstance(exc, botocore.ConnectionError)


class Outages(HttpMiddleware):
    async def http(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = False

        async def tracking(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, tracking)
        except Exception as exc:
            if started:  # a stream cut off midway: nothing more can be said
                raise
            headers = {}
            if is_outage(exc):
                cause = getattr(exc, "orig", None) or exc
                log.warning("database or storage unavailable: %s: %s", type(cause).__name__, cause)
                error: VolcImageError = ServiceUnavailable(
                    "The database or storage is busy or unreachable; try again in a moment"
                )
                headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
            else:
                log.exception("request failed: %s %s", scope["method"], scope["path"])
                error = VolcImageError("Something went wrong on our side; it has been logged")
            answer = JSONResponse(body_of(error), status_code=error.status_code, headers=headers)
            await answer(scope, receive, send)
