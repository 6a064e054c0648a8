"""What a request that failed outside the product's own errors answers: 503 with Retry-After
when the database or storage is down, busy or saturated (the request may simply be repeated),
else a 500. Both in the error shape, both with the cause logged, and inside the CORS and
security-header middleware, so those headers are on them too."""

from __future__ import annotations

import logging

from botocore.exceptions import ConnectionError as StorageConnectionError
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout

log = logging.getLogger("volcimage.app")

RETRY_AFTER_SECONDS = 2
# PostgreSQL SQLSTATEs that pass: connection exceptions, insufficient resources, transaction
# rollbacks (deadlock, serialization), shutdowns under way, and a database that is read-only
# for a while (a failover's standby, default_transaction_read_only)
TRANSIENT_SQLSTATES = ("08", "53", "40", "57P", "25006")
TRANSIENT_SQLITE = ("SQLITE_BUSY", "SQLITE_LOCKED")


def is_outage(exc: BaseException) -> bool:
    """Whether the database or storage failed for a while, not for good."""
    if isinstance(exc, OSError | PoolTimeout | StorageConnectionError):
        return not isinstance(exc, FileNotFoundError | PermissionError | IsADirectoryError)
    if not isinstance(exc, DBAPIError):
        return False
    if exc.connection_invalidated:
        return True
    sqlstate = str(getattr(exc.orig, "sqlstate", None) or "")
    sqlite_error = str(getattr(exc.orig, "sqlite_errorname", None) or "")
    return sqlstate.startswith(TRANSIENT_SQLSTATES) or sqlite_error in TRANSIENT_SQLITE
