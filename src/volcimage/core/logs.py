"""Logging: text or JSON records, a rotating file, and secrets redacted from every line."""

from __future__ import annotations

import logging
import logging.handlers
import sys

from pythonjsonlogger.json import JsonFormatter

from volcimage.core.config import Settings

REDACTED = "***"
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"


class RedactSecrets(logging.Filter):
    """Replaces every configured secret value in a record's final message and extra fields."""

    def __init__(self, secrets: list[str]) -> None:
        super().__init__()
        self.secrets = [s for s in secrets if len(s) >= 4]

    def filter(self, record: logging.LogRecord) -> bool:
        if not self.secrets:
            return True
        message = record.getMessage()
        for secret in self.secrets:
            message = message.replace(secret, REDACTED)
        record.msg, record.args = message, None
        for key, value in list(record.__dict__.items()):
            if isinstance(value, str) and key not in ("msg", "message"):
                for secret in self.secrets:
                    if secret in value:
                        value = value.replace(secret, REDACTED)
                setattr(record, key, value)
        return True


def configure_logging(settings: Settings) -> None:
    formatter: logging.Formatter
    if settings.LOG_FORMAT == "json":
        formatter = JsonFormatter(
            "%(asctime)s %(levelname)s %(name)s %(message)s",
            rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
        )
    else:
        formatter = logging.Formatter(TEXT_FORMAT)
    redact = RedactSecrets(settings.secrets())
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if settings.LOG_FILE is not None:
        settings.LOG_FILE.parent.mkdir(parents=True, exist_ok=True)
        handlers.append(
            logging.handlers.RotatingFileHandler(
                settings.LOG_FILE,
                maxBytes=settings.LOG_MAX_SIZE * 1024 * 1024,
                backupCount=settings.LOG_BACKUP_COUNT,
                encoding="utf-8",
            )
        )
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
        old.close()
    for handler in handlers:
        handler.setFormatter(formatter)
        handler.addFilter(redact)
        root.addHandler(handler)
    root.setLevel(settings.APP_LOG_LEVEL)
    for noisy in ("httpx", "httpcore", "sqlalchemy.engine", "aiosqlite", "asyncio"):
        logging.getLogger(noisy).setLevel(
            logging.INFO if noisy == "sqlalchemy.engine" and settings.SHOW_SQL else logging.WARNING
        )
    logging.getLogger("uvicorn.access").handlers.clear()
    logging.getLogger("uvicorn.access").propagate = True
    logging.getLogger("uvicorn.error").handlers.clear()
    logging.getLogger("uvicorn.error").propagate = True
