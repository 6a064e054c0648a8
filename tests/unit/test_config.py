"""Settings: every variable documented, bad values named, secrets hidden."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from volcimage.cli import main
from volcimage.core.config import ConfigError, Settings, load_settings, sqlite_path

ROOT = Path(__file__).resolve().parents[2]


def test_env_example_documents_every_setting_and_nothing_else() -> None:
    text = (ROOT / ".env.example").read_text()
    documented = set(re.findall(r"^#? ?([A-Z][A-Z0-9_]+)=", text, re.M))
    assert set(Settings.model_fields) == documented


def test_seed_variables_keep_their_names() -> None:
    seed = {
        "VOLC_ACCESS_KEY",
        "VOLC_SECRET_KEY",
        "VOLC_REGION",
        "VOLC_SERVICE",
        "APP_NAME",
        "APP_PORT",
        "BACKEND_PORT",
        "APP_LOG_LEVEL",
        "SECRET_KEY",
        "DATABASE_URL",
        "DATA_DIR",
        "IMAGE_DIR",
        "THUMBNAIL_DIR",
        "MAX_HISTORY_DAYS",
        "MAX_STORAGE_GB",
        "AUTO_CLEANUP",
        "MAX_CONCURRENT_TASKS",
        "REQUEST_TIMEOUT",
        "TASK_POLL_INTERVAL",
        "MAX_RETRY_COUNT",
        "ALLOWED_ORIGINS",
        "ENABLE_API_KEY_AUTH",
        "API_KEY",
        "THUMBNAIL_MAX_SIZE",
        "THUMBNAIL_QUALITY",
        "LOG_FILE",
        "LOG_MAX_SIZE",
        "LOG_BACKUP_COUNT",
        "HOT_RELOAD",
        "SHOW_SQL",
    }
    assert seed <= set(Settings.model_fields)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("APP_PORT", "eighty"),
        ("MAX_CONCURRENT_TASKS", "0"),
        ("THUMBNAIL_QUALITY", "101"),
        ("DATABASE_URL", "mysql://x"),
        ("VOLC_PROVIDER_MODE", "sometimes"),
        ("APP_LOG_LEVEL", "LOUD"),
        ("TRUSTED_PROXIES", "10.0.0.0/8,nginx"),
        ("APP_NAME", ""),
        ("PRICE_OVERRIDES", "jimeng-4.0"),
        ("PRICE_OVERRIDES", "jimeng-4.0=cheap"),
        ("PRICE_OVERRIDES", "jimeng-4.0=-1"),
        ("VISUAL_CONCURRENCY", "-1"),
        ("MODEL_IMAGES_PER_MINUTE", "seedream-4.0"),
        ("MODEL_IMAGES_PER_MINUTE", "seedream-4.0=1.5"),
        ("MODEL_IMAGES_PER_MINUTE", "=20"),
        ("MODEL_REQUEST_TIMEOUTS", "seedream-4.0=0"),
        ("MODEL_REQUEST_TIMEOUTS", "seedream-4.0=inf"),
        ("MODEL_REQUEST_TIMEOUTS", "seedream-4.0=soon"),
    ],
)
def test_bad_value_stops_start_up_naming_the_variable(name: str, value: str) -> None:
    with pytest.raises(ConfigError, match=name):
        load_settings(_env_file=None, **{name: value})


def test_cli_reports_bad_setting_and_exits_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MAX_RETRY_COUNT", "-1")
    assert main(["migrate"]) == 2
    assert "MAX_RETRY_COUNT" in capsys.readouterr().err


def test_cli_reports_a_model_setting_of_a_model_not_in_the_catalog_and_exits_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MODEL_IMAGES_PER_MINUTE", "seedream-4.0=20,seedream-9=5")
    assert main(["migrate"]) == 2
    err = capsys.readouterr().err
    assert "MODEL_IMAGES_PER_MINUTE" in err and "seedream-9" in err and "seedream-4.0" not in err


def test_secrets_are_hidden_in_repr_and_mode_follows_keys() -> None:
    settings = load_settings(
        _env_file=None, ARK_API_KEY="ark-secret-123", VOLC_PROVIDER_MODE="auto"
    )
    assert "ark-secret-123" not in repr(settings)
    assert settings.ark_mode == "real"
    assert "ark-secret-123" in settings.secrets()
    assert load_settings(_env_file=None, VOLC_PROVIDER_MODE="auto").ark_mode == "demo"
    forced = load_settings(_env_file=None, ARK_API_KEY="k", VOLC_PROVIDER_MODE="demo")
    assert forced.ark_mode == "demo"


def test_keys_left_empty_as_in_env_example_mean_demo_mode() -> None:
    empty = load_settings(
        _env_file=None, ARK_API_KEY="", VOLC_ACCESS_KEY="", VOLC_SECRET_KEY="", API_KEY=""
    )
    assert empty.ark_mode == "demo" and empty.visual_mode == "demo"
    assert empty.ARK_API_KEY is None and empty.API_KEY is None


def test_visual_mode_needs_both_halves_of_the_key_pair() -> None:
    assert load_settings(_env_file=None, VOLC_ACCESS_KEY="ak").visual_mode == "demo"
    pair = load_settings(_env_file=None, VOLC_ACCESS_KEY="ak", VOLC_SECRET_KEY="sk")
    assert pair.visual_mode == "real" and pair.ark_mode == "demo"


def test_sqlite_path_of_urls() -> None:
    assert sqlite_path("sqlite+aiosqlite:///./data/x.db") == Path("./data/x.db")
    assert sqlite_path("sqlite+aiosqlite:////abs/x.db") == Path("/abs/x.db")
    assert sqlite_path("sqlite+aiosqlite://") is None


def test_only_the_studios_own_origin_and_no_proxy_are_trusted_by_default() -> None:
    settings = load_settings(_env_file=None)
    assert settings.allowed_origins == [] and settings.trusted_proxies == []
    given = load_settings(_env_file=None, TRUSTED_PROXIES=" 127.0.0.1, 172.16.0.0/12 ")
    assert given.trusted_proxies == ["127.0.0.1", "172.16.0.0/12"]


def test_retired_models_and_price_overrides_are_read_as_ids_and_prices() -> None:
    settings = load_settings(
        _env_file=None,
        RETIRED_MODELS="seededit-3.0, seedream-4.0",
        PRICE_OVERRIDES="jimeng-4.0=0.25",
    )
    assert settings.retired_models == {"seededit-3.0", "seedream-4.0"}
    assert settings.price_overrides == {"jimeng-4.0": 0.25}
    assert load_settings(_env_file=None).price_overrides == {}


def test_per_model_settings_are_read_as_id_equals_number() -> None:
    settings = load_settings(
        _env_file=None,
        MODEL_IMAGES_PER_MINUTE=" seedream-4.0 = 20, jimeng-4.0=0,",
        MODEL_REQUEST_TIMEOUTS="seedream-4.5=600",
    )
    assert settings.model_images_per_minute == {"seedream-4.0": 20, "jimeng-4.0": 0}
    assert settings.model_request_timeouts == {"seedream-4.5": 600.0}
    defaults = load_settings(_env_file=None)
    assert defaults.model_images_per_minute == {} == defaults.model_request_timeouts
