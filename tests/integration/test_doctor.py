"""`volcimage doctor` against the emulator as its own server, in real mode: working keys pass;
a wrong Ark key, access key, secret or region each fail naming the setting; nothing is paid
and no key is printed."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support import Server, free_port, local, process_env, volcimage
from volcimage.emulator.visual import DEMO_ACCESS_KEY, DEMO_SECRET_KEY

GOOD = {
    "ARK_API_KEY": "ark-doctor-1f9e",
    "VOLC_ACCESS_KEY": DEMO_ACCESS_KEY,
    "VOLC_SECRET_KEY": DEMO_SECRET_KEY,
}


@pytest.fixture(scope="module")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One for the module: no test here makes an image, so its counts stay at zero."""
    port, root = free_port(), tmp_path_factory.mktemp("emulator")
    server = Server(
        ["emulator", "--port", str(port)],
        process_env(root, "sqlite+aiosqlite:///:memory:"),
        root,
        port,
    )
    try:
        server.wait_ready("/_emulator/stats")
        yield server
    finally:
        server.stop()


def doctor(tmp_path: Path, database_url: str, emulator: Server, **keys: Any) -> tuple[int, str]:
    env = process_env(
        tmp_path,
        database_url,
        VOLC_PROVIDER_MODE="real",
        ARK_BASE_URL=f"{emulator.url}/api/v3",
        VOLC_BASE_URL=f"{emulator.url}/visual",
        **{**GOOD, **keys},
    )
    done = volcimage(env, tmp_path, "doctor")
    return done.returncode, done.stdout + done.stderr


def lines_of(output: str) -> dict[str, str]:
    """Each check's line by its name: `ok    Ark API     key accepted …` → {"Ark API": "ok …"}."""
    found = {}
    for line in output.splitlines():
        for name in ("database", "storage", "Ark API", "Visual API"):
            if line[6:].startswith(name):
                found[name] = line[:4].strip() + " " + line[6 + len(name) :].strip()
    return found


@pytest.mark.fresh_database
def test_working_keys_pass_and_a_database_not_migrated_is_named(
    tmp_path: Path, database_url: str, emulator: Server
) -> None:
    status, output = doctor(tmp_path, database_url, emulator)
    assert status == 1 and "volcimage migrate" in lines_of(output)["database"], output
    migrated = volcimage(process_env(tmp_path, database_url), tmp_path, "migrate")
    assert migrated.returncode == 0, migrated.stderr
    status, output = doctor(tmp_path, database_url, emulator)
    checks = lines_of(output)
    assert status == 0, output
    assert set(checks) == {"database", "storage", "Ark API", "Visual API"}
    assert all(line.startswith("ok ") for line in checks.values()), output
    assert "at revision" in checks["database"] and "GB free" in checks["storage"]


@pytest.mark.one_database  # the upstream's answers are the point
@pytest.mark.parametrize(
    ("keys", "check", "named"),
    [
        ({"ARK_API_KEY": "invalid-key"}, "Ark API", "ARK_API_KEY"),
        ({"VOLC_ACCESS_KEY": "AKLTnobody"}, "Visual API", "VOLC_ACCESS_KEY"),
        ({"VOLC_SECRET_KEY": "not-the-secret"}, "Visual API", "VOLC_SECRET_KEY"),
        ({"VOLC_REGION": "cn-beijing"}, "Visual API", "VOLC_REGION"),
        ({"ARK_API_KEY": ""}, "Ark API", "ARK_API_KEY"),  # real mode without a key
    ],
)
def test_each_wrong_credential_fails_naming_it_and_pays_nothing(
    tmp_path: Path,
    database_url: str,
    emulator: Server,
    keys: dict[str, str],
    check: str,
    named: str,
) -> None:
    assert volcimage(process_env(tmp_path, database_url), tmp_path, "migrate").returncode == 0
    status, output = doctor(tmp_path, database_url, emulator, **keys)
    checks = lines_of(output)
    assert status == 1, output
    assert checks[check].startswith("FAIL ") and named in checks[check], output
    assert [name for name, line in checks.items() if line.startswith("FAIL")] == [check]
    assert f"failed: {check}" in output
    used = {**GOOD, **keys}
    for secret in filter(None, (used["ARK_API_KEY"], used["VOLC_SECRET_KEY"])):
        assert secret not in output
    ark = local.get(f"{emulator.url}/_emulator/stats").json()
    visual = local.get(f"{emulator.url}/_emulator/visual/stats").json()
    assert ark["images_generated"] == 0 and visual["images_generated"] == 0
    assert visual["submits"] == 0 and visual["processes"] == 0
