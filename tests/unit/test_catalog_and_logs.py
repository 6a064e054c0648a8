"""Catalog size rules, request checks, and log redaction."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from volcimage.catalog.models import load_catalog
from volcimage.core.config import load_settings
from volcimage.core.errors import ValidationError
from volcimage.core.logs import configure_logging
from volcimage.tasks.schemas import GenerateRequest
from volcimage.tasks.service import check_request


def test_default_model_exists_and_sizes_of_presets_are_valid() -> None:
    catalog = load_catalog()
    catalog.get(catalog.default_model)
    for model in catalog.models:
        if model.size_rule.mode == "adaptive":
            assert not model.size_presets and model.min_reference_images == 1
            continue
        for preset in [model.default_size, *model.size_presets]:
            width, height = map(int, preset.split("x"))
            assert model.size_rule.check(width, height) is None, (model.id, preset)


@pytest.mark.parametrize(
    ("model", "size", "ok"),
    [
        ("seedream-3.0", (512, 2048), True),
        ("seedream-3.0", (511, 1024), False),
        ("seedream-4.0", (1280, 720), True),
        ("seedream-4.0", (1280, 719), False),
        ("seedream-4.0", (4096, 4096), True),
        ("seedream-4.0", (4097, 4096), False),
        ("seedream-4.5", (2560, 1440), True),
        ("seedream-4.5", (1920, 1080), False),
        ("seedream-4.0", (4096, 255), False),
    ],
)
def test_size_rules_follow_the_docs(model: str, size: tuple[int, int], ok: bool) -> None:
    assert (load_catalog().get(model).size_rule.check(*size) is None) is ok


def test_check_request_fills_model_defaults() -> None:
    model, width, height = check_request(GenerateRequest(prompt="x"), load_catalog())
    assert model.id == load_catalog().default_model
    assert (width, height) == model.default_dimensions


def test_unknown_model_lists_the_allowed_ones() -> None:
    with pytest.raises(ValidationError) as info:
        check_request(GenerateRequest(prompt="x", model="nope"), load_catalog())
    assert "seedream-3.0" in info.value.details["allowed"]


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
