"""Schemathesis against the app's own OpenAPI schema: whatever it sends, no answer is a 500,
and every answer matches the schema's status codes. Bounded here; `SCHEMATHESIS_EXAMPLES`
raises the count for the longer run documented in docs/reliability.md."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance

from tests.support import process_env
from volcimage.app import create_app
from volcimage.core.config import load_settings
from volcimage.core.migrate import migrate

ROOT = Path(tempfile.mkdtemp(prefix="volcimage-fuzz-"))
# SQLite here; VOLCIMAGE_FUZZ_DATABASE_URL (an empty database) runs it on PostgreSQL
DATABASE_URL = os.environ.get(
    "VOLCIMAGE_FUZZ_DATABASE_URL", f"sqlite+aiosqlite:///{ROOT}/data/database.db"
)
SETTINGS = load_settings(_env_file=None, **process_env(ROOT, DATABASE_URL, RATE_LIMIT_PER_MINUTE=0))
migrate(SETTINGS)
APP = create_app(SETTINGS, run_tasks=False)
# The event stream never ends by itself; its shape is tested in the server tests.
schema = schemathesis.openapi.from_asgi("/openapi.json", APP).exclude(path="/api/v1/events")
EXAMPLES = int(os.environ.get("SCHEMATHESIS_EXAMPLES", "25"))


@schema.parametrize()
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
def test_no_input_makes_a_server_error(case: schemathesis.Case) -> None:
    response = case.call()
    assert response.status_code < 500, f"{case.method} {case.path}: {response.text[:500]}"
    # Model-specific rules (which parameters, how many references) are not expressible in
    # the schema, so schema-valid bodies may rightly get a 400: that check is left out.
    case.validate_response(response, excluded_checks=[positive_data_acceptance])
