"""Backoff, and log redaction (the catalog's rules: unit/catalog, unit/tasks)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

from volcimage.core.config import load_settings
from volcimage.core.logs import configure_logging
from volcimage.queue.runner import backoff_seconds


def test_backoff_grows_with_jitter_and_honours_retry_after() -> None:
    settings = load_settings(_env_file=None, RETRY_BASE_DELAY=1, RETRY_MAX_DELAY=8)
    for attempt, ceiling in [(0, 1), (1, 2), (2, 4), (5, 8)]:
        delays = {backoff_seconds(settings, attempt, None) for _ in range(20)}
        assert all(ceiling / 2 <= d <= ceiling for d in delays)
        assert len(delays) > 1
    assert backoff_seconds(settings, 0, 30) == 30
    assert backoff_seconds(settings, 0, 86400) == backoff_seconds(settings, 0, 1e12) == 600


def test_logs_redact_secrets_in_messages_and_fields(tmp_path: Path) -> None:
    log_file = tmp_path / "app.log"
    settings = load_settings(
        _env_file=None, ARK_API_KEY="sk-very-secret", LOG_FILE=str(log_file), LOG_FORMAT="json"
    )
    configure_logging(settings)
    try:
        logging.getLogger("volcimage.test").warning(
            "calling with %s", "Bearer sk-very-secret", extra={"header": "sk-very-secret"}
        )
        for handler in logging.getLogger().handlers:
            handler.flush()
        line = log_file.read_text().strip().splitlines()[-1]
        record = json.loads(line)
        assert "sk-very-secret" not in line
        assert record["message"] == "calling with Bearer ***" and record["header"] == "***"
    finally:
        configure_logging(load_settings(_env_file=None, LOG_FILE=""))
