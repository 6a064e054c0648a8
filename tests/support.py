"""Helpers for tests: environments for volcimage processes, real servers on free ports, and
waiting on tasks through the API."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import select

from volcimage.config import Settings, load_settings
from volcimage.db import create_engine, create_sessionmaker
from volcimage.tasks.models import UpstreamCall


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def process_env(tmp_path: Path, database_url: str, **extra: Any) -> dict[str, str]:
    """Environment variables for a volcimage process in a test (no `.env` is read: cwd is tmp)."""
    values = {
        "DATABASE_URL": database_url,
        "DATA_DIR": str(tmp_path / "data"),
        "IMAGE_DIR": str(tmp_path / "data" / "images"),
        "THUMBNAIL_DIR": str(tmp_path / "data" / "thumbnails"),
        "LOG_FILE": str(tmp_path / "logs" / "app.log"),
        "VOLC_PROVIDER_MODE": "demo",
        "EMULATOR_LATENCY_MS": "0",
        "TASK_POLL_INTERVAL": "0.05",
        "RETRY_BASE_DELAY": "0.01",
        "RETRY_MAX_DELAY": "0.05",
        "MAX_CONCURRENT_TASKS": "4",
    }
    values.update({k: str(v) for k, v in extra.items()})
    return values


async def generate(client: httpx.AsyncClient, **body: Any) -> dict[str, Any]:
    """Submits a task (Seedream 3.0 unless told) and returns the 201 body."""
    payload = {"prompt": "a red fox in snow", "model": "seedream-3.0", **body}
    response = await client.post("/api/v1/generate", json=payload)
    assert response.status_code == 201, response.text
    return dict(response.json())


async def wait_for_task(
    client: httpx.AsyncClient, task_id: str, timeout: float = 30.0
) -> dict[str, Any]:
    """Follows the task over the API until it reaches a final state."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        task = (await client.get(f"/api/v1/task/{task_id}")).json()
        if task["status"] in ("completed", "failed", "cancelled"):
            return dict(task)
        await asyncio.sleep(0.05)
    raise AssertionError(f"task {task_id} did not finish in {timeout} s: {task}")


class Server:
    """A volcimage command running as a real process on a free port."""

    def __init__(self, args: list[str], env: dict[str, str], cwd: Path, port: int) -> None:
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.log_path = cwd / f"server-{port}.log"
        self._log = self.log_path.open("wb")
        full_env = {**os.environ, **env}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "volcimage", *args],
            env=full_env,
            cwd=cwd,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    def wait_ready(self, path: str = "/api/v1/health", timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"server exited: {self.log_path.read_text()}")
            try:
                if httpx.get(self.url + path, timeout=1).status_code < 500:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"server not ready: {self.log_path.read_text()}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()


def start_process(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.Popen[bytes]:
    log = (cwd / f"{args[0]}-{uuid.uuid4().hex[:6]}.log").open("wb")
    return subprocess.Popen(
        [sys.executable, "-m", "volcimage", *args],
        env={**os.environ, **env},
        cwd=cwd,
        stdout=log,
        stderr=subprocess.STDOUT,
    )


async def upstream_calls(database_url: str) -> list[UpstreamCall]:
    """Every upstream call row, read straight from the database a process is using."""
    engine = create_engine(load_settings(_env_file=None, DATABASE_URL=database_url))
    try:
        async with create_sessionmaker(engine)() as session:
            return list((await session.scalars(select(UpstreamCall))).all())
    finally:
        await engine.dispose()


class Studio:
    """The app in process with its client, emulator state and settings, for runner tests."""

    def __init__(self, app: Any, client: httpx.AsyncClient, settings: Settings) -> None:
        self.app = app
        self.client = client
        self.settings = settings
        self.state = app.state.volcimage
        self.emulator = self.state.emulator.state.emulator

    async def generate(self, **body: Any) -> dict[str, Any]:
        payload = {"prompt": "a lighthouse", "model": "seedream-3.0", **body}
        response = await self.client.post("/api/v1/generate", json=payload)
        assert response.status_code == 201, response.text
        return dict(response.json())

    async def run(self, **body: Any) -> dict[str, Any]:
        return await wait_for_task(self.client, (await self.generate(**body))["task_id"])
