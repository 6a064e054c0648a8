"""The studio without its optional packages, as a real process: with local storage it starts,
serves and generates through both APIs while boto3, botocore (the `s3` extra) and the umbrella
`volcengine` SDK (tests only) cannot be imported; S3 storage without boto3 stops start-up with
the command that installs it."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.support import free_port, local, process_env, wait_task

ABSENT = ("boto3", "botocore", "volcengine")
# `volcimage` as its console script runs it, each of ABSENT failing to import as if not installed
WITHOUT = (
    "import sys\n"
    f"sys.modules.update(dict.fromkeys({ABSENT!r}))\n"
    "from volcimage.cli import main\n"
    "sys.exit(main())\n"
)


def env_for(tmp_path: Path, **extra: str) -> dict[str, str]:
    url = f"sqlite+aiosqlite:///{tmp_path}/data/database.db"
    return {**os.environ, **process_env(tmp_path, url, **extra)}


def test_local_storage_serves_and_generates_without_optional_packages(tmp_path: Path) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = tmp_path / "server.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-c", WITHOUT, "serve", "--port", str(port)],
            env=env_for(tmp_path),
            cwd=tmp_path,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 120  # a safety net for a busy machine
        while True:
            assert process.poll() is None, log.read_text()
            assert time.monotonic() < deadline, f"not serving: {log.read_text()}"
            try:
                health = local.get(f"{url}/api/v1/health", timeout=1)
                break
            except httpx.HTTPError:
                time.sleep(0.1)
        assert health.status_code == 200, health.text
        for model in ("seedream-3.0", "jimeng-3.1"):  # Ark, then the signed Visual API
            created = local.post(f"{url}/api/v1/generate", json={"prompt": "a fox", "model": model})
            assert created.status_code == 201, created.text
            task = wait_task(url, created.json()["task_id"])
            assert task["status"] == "completed", (task, log.read_text())
    finally:
        process.terminate()
        process.wait(15)


def test_s3_storage_without_boto3_stops_start_up_naming_the_extra(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-c", WITHOUT, "serve"],
        env=env_for(tmp_path, STORAGE_BACKEND="s3"),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2, result.stderr
    assert "STORAGE_BACKEND" in result.stderr
    assert "s3 needs boto3, which is not installed: pip install 'volcimage[s3]'" in result.stderr
