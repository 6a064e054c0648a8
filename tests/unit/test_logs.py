"""Log redaction (the catalog's rules: unit/catalog, unit/tasks; backoff: unit/queue)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

from volcimage.core.config import load_settings
from volcimage.core.logs import configure_logging


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
