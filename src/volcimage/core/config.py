"""Settings: the only reader of the environment (and of `.env`)."""

from __future__ import annotations

import ipaddress
import math
from collections.abc import Callable
from functools import lru_cache
from importlib.util import find_spec
from pathlib import Path
from typing import Literal, TypeVar

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

ARK_DEFAULT_BASE_URL = "https://ark.cn-beijing.volces.com/api/v3"
VOLC_DEFAULT_BASE_URL = "https://visual.volcengineapi.com"
N = TypeVar("N", int, float)
ProviderState = Literal["real", "demo", "not_configured"]
# What each upstream needs set (names, never values): shown to the operator who lacks them
PROVIDER_CREDENTIALS = {"ark": ["ARK_API_KEY"], "visual": ["VOLC_ACCESS_KEY", "VOLC_SECRET_KEY"]}
S3_MISSING = "s3 needs boto3, which is not installed: pip install 'volcimage[s3]'"


class Settings(BaseSettings):
    """Every variable of `.env.example`; names match the seed's implementation plan §4.3."""

    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", case_sensitive=True
    )

    # VolcEngine credentials and endpoints
    VOLC_ACCESS_KEY: SecretStr | None = None
    VOLC_SECRET_KEY: SecretStr | None = None
    VOLC_REGION: str = "cn-north-1"
    VOLC_SERVICE: str = "cv"
    VOLC_BASE_URL: str = VOLC_DEFAULT_BASE_URL
    ARK_API_KEY: SecretStr | None = None
    ARK_BASE_URL: str = ARK_DEFAULT_BASE_URL
    VOLC_PROVIDER_MODE: Literal["auto", "real", "demo"] = "auto"
    ARK_RESPONSE_FORMAT: Literal["url", "b64_json"] = "url"

    # Catalog: an operator's changes, without a code change (model ids; `id=price,…` in CNY)
    RETIRED_MODELS: str = ""
    PRICE_OVERRIDES: str = ""

    # Application
    APP_NAME: str = Field("volcimage", min_length=1, max_length=60, description="page title")
    APP_HOST: str = "0.0.0.0"  # noqa: S104 - a server for a LAN/container by design
    APP_PORT: int = Field(8080, ge=1, le=65535)
    BACKEND_PORT: int = Field(8000, ge=1, le=65535)
    APP_LOG_LEVEL: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"
    LOG_FORMAT: Literal["text", "json"] = "text"
    SECRET_KEY: SecretStr = SecretStr("change-this-to-a-random-secret-key-min-32-chars")

    # Database
    DATABASE_URL: str = "sqlite+aiosqlite:///./data/database.db"
    SQLITE_BUSY_TIMEOUT_MS: int = Field(15000, ge=100, description="a write waits this long")

    # Storage
    DATA_DIR: Path = Path("./data")
    IMAGE_DIR: Path = Path("./data/images")
    THUMBNAIL_DIR: Path = Path("./data/thumbnails")
    # Retention (volcimage.retention): 0 = no limit for either
    MAX_HISTORY_DAYS: int = Field(30, ge=0, description="tasks and unused uploads kept, days")
    MAX_STORAGE_GB: float = Field(100, ge=0, description="images, thumbnails and uploads")
    AUTO_CLEANUP: bool = True  # at start, hourly, and when a write finds the disk full
    CLEANUP_KEEP_FAVORITES: bool = True  # a task with a favourite is never removed
    MIN_FREE_DISK_MB: int = Field(200, ge=0, description="/health reports the disk full below")

    # Performance
    MAX_CONCURRENT_TASKS: int = Field(5, ge=1, le=256)
    MAX_PENDING_TASKS: int = Field(200, ge=1)
    REQUEST_TIMEOUT: float = Field(300, gt=0)
    TASK_POLL_INTERVAL: float = Field(2, gt=0)
    MAX_RETRY_COUNT: int = Field(3, ge=0, le=20)
    RETRY_BASE_DELAY: float = Field(2, gt=0)
    RETRY_MAX_DELAY: float = Field(120, gt=0)
    TASK_LEASE_SECONDS: float = Field(30, ge=2)

    # Security
    # Other sites' pages that may call the API (CORS) and make changes; empty: the studio's own
    ALLOWED_ORIGINS: str = ""
    # Proxies (addresses or CIDRs) whose X-Forwarded-For / -Proto are believed; empty: none
    TRUSTED_PROXIES: str = ""
    ENABLE_API_KEY_AUTH: bool = False
    API_KEY: SecretStr | None = None
    BASIC_AUTH_USERNAME: str | None = None
    BASIC_AUTH_PASSWORD: SecretStr | None = None
    # Accounts: users sign in with a password (create the first admin with `volcimage user`)
    ENABLE_USER_ACCOUNTS: bool = False
    SESSION_HOURS: int = Field(24 * 14, ge=1, le=24 * 365, description="a sign-in lasts this long")
    # An idle stream re-checks its session this often: a session can also end where no event
    # tells it (it expires; `volcimage user set --disabled` on SQLite: no bus between processes)
    SESSION_RECHECK_SECONDS: float = Field(15, gt=0, le=3600)
    USER_DAILY_IMAGE_QUOTA: int = Field(0, ge=0, description="images a day per user; 0 = off")
    LOGIN_ATTEMPTS_PER_MINUTE: int = Field(10, ge=1, description="failed sign-ins per client")
    RATE_LIMIT_PER_MINUTE: int = Field(600, ge=0, description="API requests per client; 0 = off")
    DAILY_IMAGE_QUOTA: int = Field(0, ge=0, description="images a day for everyone; 0 = off")
    UPSTREAM_IMAGES_PER_MINUTE: int = Field(0, ge=0, description="all workers together; 0 = off")
    # The account's limits at VolcEngine, held by every worker together (docs/reliability.md):
    # calls in flight per upstream (0 = none of its own) and images a minute per model
    ARK_CONCURRENCY: int = Field(0, ge=0, le=256)
    VISUAL_CONCURRENCY: int = Field(1, ge=0, le=256)  # documented: 1–2 per account
    ARK_IMAGES_PER_MINUTE: int = Field(500, ge=0, description="per Ark model; 0 = off")
    # Per model id, `id=n` comma-separated: images a minute (0 = off), and seconds a call of
    # one image may take (a group's is this times its size)
    MODEL_IMAGES_PER_MINUTE: str = ""
    MODEL_REQUEST_TIMEOUTS: str = ""

    # Behind nginx: image files are sent by nginx (X-Accel-Redirect) after the app's checks
    X_ACCEL_REDIRECT: bool = False

    # Where image files live: local directories, or an S3-compatible bucket (TOS, MinIO, AWS)
    STORAGE_BACKEND: Literal["local", "s3"] = "local"
    S3_ENDPOINT_URL: str | None = None
    S3_BUCKET: str = "volcimage"
    S3_REGION: str = "us-east-1"
    S3_PREFIX: str = ""
    S3_ACCESS_KEY_ID: SecretStr | None = None
    S3_SECRET_ACCESS_KEY: SecretStr | None = None
    S3_PRESIGNED_DOWNLOADS: bool = True

    # Reference images sent by users (POST /api/v1/uploads)
    MAX_UPLOAD_MB: int = Field(10, ge=1, le=100)

    # Thumbnails
    THUMBNAIL_MAX_SIZE: int = Field(400, ge=16, le=4096)
    THUMBNAIL_QUALITY: int = Field(85, ge=1, le=100)

    # Logging
    LOG_FILE: Path | None = Path("./logs/app.log")
    LOG_MAX_SIZE: int = Field(100, ge=1, description="MB")
    LOG_BACKUP_COUNT: int = Field(10, ge=0)

    # Development
    HOT_RELOAD: bool = False
    SHOW_SQL: bool = False

    # Built-in emulator (demo mode and tests)
    EMULATOR_LATENCY_MS: int = Field(800, ge=0)
    # Spread of the emulated latency: lognormal around EMULATOR_LATENCY_MS with this sigma
    EMULATOR_LATENCY_JITTER: float = Field(0.3, ge=0, le=2)
    # Faults the emulator applies to its next calls, in order (comma-separated fault names)
    EMULATOR_FAULTS: str = ""
    EMULATOR_DOWNLOAD_LATENCY_MS: int = Field(0, ge=0)

    # `cp .env.example .env` leaves keys empty: empty means unset, not a key of "".
    @field_validator(
        "LOG_FILE",
        "VOLC_ACCESS_KEY",
        "VOLC_SECRET_KEY",
        "ARK_API_KEY",
        "API_KEY",
        "BASIC_AUTH_USERNAME",
        "BASIC_AUTH_PASSWORD",
        "S3_ENDPOINT_URL",
        "S3_ACCESS_KEY_ID",
        "S3_SECRET_ACCESS_KEY",
        mode="before",
    )
    @classmethod
    def _empty_means_none(cls, value: object) -> object:
        return None if value in ("", None) else value

    @field_validator("DATABASE_URL")
    @classmethod
    def _known_database(cls, value: str) -> str:
        if not value.startswith(("sqlite+aiosqlite://", "postgresql+asyncpg://")):
            raise ValueError("must start with sqlite+aiosqlite:// or postgresql+asyncpg://")
        return value

    @field_validator("STORAGE_BACKEND")
    @classmethod
    def _s3_installed(cls, value: str) -> str:
        if value == "s3" and find_spec("boto3") is None:  # an optional extra
            raise ValueError(S3_MISSING)
        return value

    @field_validator("PRICE_OVERRIDES")
    @classmethod
    def _prices_parse(cls, value: str) -> str:
        _per_model(value, float, "a price >= 0", lambda n: 0 <= n < math.inf)
        return value

    @field_validator("TRUSTED_PROXIES")
    @classmethod
    def _addresses(cls, value: str) -> str:
        for item in _items(value):
            try:
                ipaddress.ip_network(item, strict=False)
            except ValueError:
                raise ValueError(f"{item!r} is not an IP address or CIDR network") from None
        return value

    @field_validator("MODEL_IMAGES_PER_MINUTE")
    @classmethod
    def _images_per_model(cls, value: str) -> str:
        _per_model(value, int, "a whole number >= 0", lambda n: n >= 0)
        return value

    @field_validator("MODEL_REQUEST_TIMEOUTS")
    @classmethod
    def _timeouts_per_model(cls, value: str) -> str:
        _per_model(value, float, "seconds > 0", lambda n: 0 < n < math.inf)
        return value

    @model_validator(mode="after")
    def _api_key_when_required(self) -> Settings:
        if self.ENABLE_API_KEY_AUTH and self.API_KEY is None:
            raise ValueError("API_KEY must be set when ENABLE_API_KEY_AUTH is true")
        if (self.BASIC_AUTH_USERNAME is None) != (self.BASIC_AUTH_PASSWORD is None):
            raise ValueError("set both BASIC_AUTH_USERNAME and BASIC_AUTH_PASSWORD, or neither")
        if self.ENABLE_USER_ACCOUNTS and self.BASIC_AUTH_USERNAME is not None:
            raise ValueError("choose user accounts or HTTP basic auth, not both")
        return self

    @property
    def access_mode(self) -> Literal["open", "api_key", "basic", "accounts"]:
        """How the page signs in: with nothing, an API key, the browser's basic auth, or a user."""
        if self.ENABLE_USER_ACCOUNTS:
            return "accounts"
        if self.BASIC_AUTH_USERNAME is not None:
            return "basic"
        return "api_key" if self.ENABLE_API_KEY_AUTH else "open"

    @property
    def allowed_origins(self) -> list[str]:
        return _items(self.ALLOWED_ORIGINS)

    @property
    def retired_models(self) -> set[str]:
        return set(_items(self.RETIRED_MODELS))

    @property
    def price_overrides(self) -> dict[str, float]:
        return _per_model(self.PRICE_OVERRIDES, float, "", lambda _: True)

    @property
    def trusted_proxies(self) -> list[str]:
        return _items(self.TRUSTED_PROXIES)

    @property
    def model_images_per_minute(self) -> dict[str, int]:
        return _per_model(self.MODEL_IMAGES_PER_MINUTE, int, "", lambda _: True)

    @property
    def model_request_timeouts(self) -> dict[str, float]:
        return _per_model(self.MODEL_REQUEST_TIMEOUTS, float, "", lambda _: True)

    @property
    def upload_dir(self) -> Path:
        return self.DATA_DIR / "uploads"

    @property
    def is_sqlite(self) -> bool:
        return self.DATABASE_URL.startswith("sqlite")

    @property
    def visual_mode(self) -> Literal["real", "demo"]:
        """Where Visual API calls go: the real API (a key pair is set) or the emulator."""
        if self.VOLC_PROVIDER_MODE == "demo":
            return "demo"
        has_keys = self.VOLC_ACCESS_KEY is not None and self.VOLC_SECRET_KEY is not None
        if self.VOLC_PROVIDER_MODE == "real" or has_keys:
            return "real"
        return "demo"

    @property
    def ark_mode(self) -> Literal["real", "demo"]:
        """Where Ark calls go: the real API (a key is set) or the built-in emulator."""
        if self.VOLC_PROVIDER_MODE == "demo":
            return "demo"
        if self.VOLC_PROVIDER_MODE == "real" or self.ARK_API_KEY is not None:
            return "real"
        return "demo"

    def provider_states(self) -> dict[str, ProviderState]:
        """Each upstream's state: calls go to the real API, to the emulator (demo), or to the
        real API without the credentials it needs (not_configured: they will fail)."""
        has_pair = self.VOLC_ACCESS_KEY is not None and self.VOLC_SECRET_KEY is not None
        keyed = {"ark": self.ARK_API_KEY is not None, "visual": has_pair}
        modes = {"ark": self.ark_mode, "visual": self.visual_mode}
        return {
            name: "not_configured" if mode == "real" and not keyed[name] else mode
            for name, mode in modes.items()
        }

    def secrets(self) -> list[str]:
        """Every secret value set, for log and response redaction."""
        values = [self.VOLC_ACCESS_KEY, self.VOLC_SECRET_KEY, self.ARK_API_KEY, self.API_KEY]
        values += [self.BASIC_AUTH_PASSWORD, self.S3_SECRET_ACCESS_KEY]
        values.append(self.SECRET_KEY)
        return [v.get_secret_value() for v in values if v is not None and v.get_secret_value()]

    def ensure_dirs(self) -> None:
        for path in (self.DATA_DIR, self.IMAGE_DIR, self.THUMBNAIL_DIR, self.upload_dir):
            path.mkdir(parents=True, exist_ok=True)
        if self.LOG_FILE is not None:
            self.LOG_FILE.parent.mkdir(parents=True, exist_ok=True)
        if self.is_sqlite:
            db_path = sqlite_path(self.DATABASE_URL)
            if db_path is not None:
                db_path.parent.mkdir(parents=True, exist_ok=True)


def _items(value: str) -> list[str]:
    return [item.strip() for item in value.split(",") if item.strip()]


def _per_model(
    value: str, number: Callable[[str], N], what: str, valid: Callable[[N], bool]
) -> dict[str, N]:
    """`id=n, id=n` as {id: n}; a ValueError names the item that is not `id=` `what`."""
    found = {}
    for item in _items(value):
        model, _, text = (part.strip() for part in item.partition("="))
        try:
            parsed = number(text)
        except ValueError:
            parsed = None
        if not model or parsed is None or not valid(parsed):
            raise ValueError(f"{item!r} is not model-id={what}")
        found[model] = parsed
    return found


def sqlite_path(url: str) -> Path | None:
    """The file of a sqlite+aiosqlite URL, or None for an in-memory database."""
    rest = url.split("://", 1)[1]
    if not rest.startswith("/") or rest in ("/", "/:memory:"):
        return None
    return Path(rest[1:])


class ConfigError(Exception):
    """A setting has a bad value; the message names the variable."""


def load_settings(**overrides: object) -> Settings:
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        lines = [f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()]
        raise ConfigError("invalid configuration:\n  " + "\n  ".join(lines)) from None


@lru_cache
def get_settings() -> Settings:
    return load_settings()
