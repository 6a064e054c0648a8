"""Which failures are outages: the database or storage down, busy or saturated for a while (the
work may simply be repeated), as opposed to a fault that repeating would not cure."""

from __future__ import annotations

import sys

from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout

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
