"""The deployment files, checked without a Docker engine: hadolint on the Dockerfile, the
compose file against the compose specification, the lock file against pyproject, and the
container's own start command and health check run outside Docker."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import time
import tomllib
from pathlib import Path
from typing import Any

import httpx
import yaml
from packaging.requirements import Requirement

from tests.support import free_port, local

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def test_dockerfile_passes_hadolint() -> None:
    result = subprocess.run(
        [str(BIN / "hadolint"), str(ROOT / "Dockerfile")], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_compose_file_follows_the_compose_specification() -> None:
    result = subprocess.run(
        [
            str(BIN / "check-jsonschema"),
            "--builtin-schema",
            "vendor.compose-spec",
            str(ROOT / "docker-compose.yml"),
        ],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_lock_file_pins_every_runtime_dependency_within_its_range_with_hashes() -> None:
    """The image's dependencies and the s3 extra (scripts/lock.sh), not the dev ones."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pins = {}
    for line in (ROOT / "requirements.lock").read_text().replace("\\\n", " ").splitlines():
        if line and not line.lstrip().startswith("#"):
            pin, *hashes = line.split("--hash=sha256:")
            name, version = pin.split(";")[0].strip().split("==")
            assert hashes, f"{name} has no hash: the image installs with --require-hashes"
            pins[re.sub(r"[-_.]+", "-", name).lower()] = version
    for spec in project["dependencies"] + project["optional-dependencies"]["s3"]:
        requirement = Requirement(spec)
        name = re.sub(r"[-_.]+", "-", requirement.name).lower()
        assert name in pins, f"{name} is not in requirements.lock"
        assert requirement.specifier.contains(pins[name]), f"{name}=={pins[name]} vs {spec}"
    assert "volcengine" not in pins and "volcimage" not in pins


def compose_with(env: dict[str, str]) -> dict[str, Any]:
    """docker-compose.yml as compose reads it, `${VAR:-default}` filled from `env` (as from the
    project's .env): no Docker engine here."""

    def fill(match: re.Match[str]) -> str:
        return env.get(match[1]) or match[2]

    text = re.sub(r"\$\{(\w+):-([^}]*)\}", fill, (ROOT / "docker-compose.yml").read_text())
    return dict(yaml.safe_load(text))


def test_backend_port_in_dot_env_moves_the_backend_and_nginx_upstream_together() -> None:
    services = compose_with({"BACKEND_PORT": "9001"})["services"]
    assert services["backend"]["environment"]["BACKEND_PORT"] == "9001"
    assert services["nginx"]["environment"]["BACKEND_UPSTREAM"] == "backend:9001"
    # the image's health check (which reads BACKEND_PORT), not one pinned to a port
    assert "healthcheck" not in services["backend"]
    default = compose_with({})["services"]
    assert default["nginx"]["environment"]["BACKEND_UPSTREAM"] == "backend:8000"


def dockerfile_runtime() -> tuple[dict[str, str], list[str], list[str]]:
    """The final stage's ENV, ENTRYPOINT + CMD and HEALTHCHECK command."""
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    final = text.split("\nFROM ")[-1]
    env: dict[str, str] = {}
    for line in final.splitlines():
        if line.startswith("ENV "):
            for item in shlex.split(line[4:]):
                key, _, value = item.partition("=")
                env[key] = value
    entrypoint = eval(re.search(r"^ENTRYPOINT (\[.*\])$", final, re.M)[1])
    cmd = eval(re.search(r"^CMD (\[.*\])$", final, re.M)[1])
    health = eval(re.search(r"HEALTHCHECK .*? CMD (\[.*\])$", final, re.M)[1])
    return env, entrypoint + cmd, health


def test_container_start_command_serves_and_passes_its_health_check(tmp_path: Path) -> None:
    env, command, health = dockerfile_runtime()
    assert command == ["volcimage-entrypoint", "serve"]
    port = free_port()
    data = tmp_path / "app" / "data"
    # The image's environment, with /app moved under tmp and the port made free.
    run_env = {**os.environ, **{k: v.replace("/app/", f"{tmp_path}/app/") for k, v in env.items()}}
    run_env.update(BACKEND_PORT=str(port), PATH=f"{BIN}:{os.environ['PATH']}")
    assert run_env["DATABASE_URL"] == f"sqlite+aiosqlite:///{data}/database.db"
    started = time.monotonic()
    process = subprocess.Popen(
        ["sh", str(ROOT / "deploy" / "entrypoint.sh"), *command[1:]],
        env=run_env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        while True:
            try:
                if local.get(f"http://127.0.0.1:{port}/api/v1/health", timeout=1).is_success:
                    break
            except httpx.HTTPError:
                pass
            assert process.poll() is None, process.stdout.read() if process.stdout else ""
            # a safety net, not a target: on a busy machine a start can take a while
            assert time.monotonic() - started < 120, "not ready within 120 s"
            time.sleep(0.1)
        print(f"container command ready in {time.monotonic() - started:.1f} s")
        check = subprocess.run(
            [sys.executable if health[0] == "python" else health[0], *health[1:]],
            env=run_env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert check.returncode == 0, check.stderr
        assert (data / "database.db").exists()
        assert process.stdout is not None
    finally:
        process.terminate()
        out = process.communicate(timeout=15)[0].decode()
    assert '"level": "INFO"' in out, "JSON logs to stdout, as in containers"


def make_dry_run(target: str, venv: Path) -> str:
    """What `make TARGET` would run on a fresh clone (no venv yet), without running it."""
    return subprocess.run(
        ["make", "-n", "--no-print-directory", "-C", str(ROOT), f"VENV={venv}", target],
        capture_output=True,
        text=True,
        check=True,
    ).stdout


def test_make_run_installs_only_what_serving_needs_and_make_test_adds_the_tools(
    tmp_path: Path,
) -> None:
    run = make_dry_run("run", tmp_path / "venv")
    assert "pip install -q -e .\n" in run and "[dev]" not in run
    assert run.rstrip().endswith("volcimage serve")
    test = make_dry_run("test", tmp_path / "venv")
    assert "pip install -q -e '.[dev]'" in test
    assert test.index("-e .\n") < test.index("[dev]") < test.index("bin/pytest ")
