"""The image built from Dockerfile and the compose stack run on a real Docker engine, as a user
runs them: `cp .env.example .env && docker compose up -d`, then the postgres profile with two
workers. Only tests/docker/compose.host.yml is added (host networking, loopback ports).

Run by scripts/docker-test.sh (`make test-docker`), which provides the engine and the stand-in
base images; the tests run in order and share one project folder."""

from __future__ import annotations

import json
import os
import shutil
import ssl
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support import free_port, self_signed

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).parent
UID = 10001  # the Dockerfile's user

pytestmark = [
    pytest.mark.skipif(
        shutil.which("docker") is None
        or subprocess.run(["docker", "info"], capture_output=True).returncode != 0,
        reason="no Docker engine (scripts/docker-test.sh starts one)",
    ),
    pytest.mark.timeout(1200),  # a build from scratch takes minutes on a busy machine
]


@dataclass
class Stack:
    folder: Path
    env: dict[str, str]
    files: list[Path] = field(default_factory=lambda: [HERE / "compose.host.yml"])
    profiles: list[str] = field(default_factory=list)
    tls: ssl.SSLContext | None = None  # once ./certs has a certificate

    @property
    def url(self) -> str:
        if self.tls is not None:
            return f"https://127.0.0.1:{self.env['APP_TLS_PORT']}"
        return f"http://127.0.0.1:{self.env['APP_PORT']}"

    def get(self, path: str) -> httpx.Response:
        return httpx.get(self.url + path, verify=self.tls or True)

    def compose(self, *args: str, timeout: float = 600) -> str:
        command = ["docker", "compose", "-f", str(self.folder / "docker-compose.yml")]
        for extra in self.files:
            command += ["-f", str(extra)]
        for profile in self.profiles:
            command += ["--profile", profile]
        done = subprocess.run(
            [*command, *args],
            cwd=self.folder,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        assert done.returncode == 0, f"compose {' '.join(args)}:\n{done.stdout}\n{done.stderr}"
        return done.stdout

    def up(self, *args: str) -> float:
        """`up -d`, waiting for every health check; the seconds it took."""
        started = time.monotonic()
        self.compose("up", "-d", "--wait", "--wait-timeout", "300", *args)
        return time.monotonic() - started

    def health(self) -> dict[str, str]:
        rows = [json.loads(line) for line in self.compose("ps", "--format", "json").splitlines()]
        return {row["Service"]: row["Health"] or row["State"] for row in rows}

    def logs(self, service: str) -> dict[str, list[dict[str, Any]]]:
        """Each container's JSON log records, by container name."""
        out: dict[str, list[dict[str, Any]]] = {}
        for line in self.compose("logs", "--no-color", service).splitlines():
            name, _, text = line.partition("|")
            if text.strip().startswith("{"):
                out.setdefault(name.strip(), []).append(json.loads(text))
        return out


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """A project folder as a user's clone has it after `cp .env.example .env`."""
    folder = tmp_path_factory.mktemp("project")
    shutil.copy(ROOT / "docker-compose.yml", folder)
    shutil.copy(ROOT / ".env.example", folder / ".env")
    for name in ("deploy", "src"):
        (folder / name).symlink_to(ROOT / name)
    names = ("APP_PORT", "APP_TLS_PORT", "BACKEND_PORT", "PG_PORT")
    ports = {name: str(free_port()) for name in names}
    made = Stack(folder, {**os.environ, **ports})
    yield made
    made.profiles = ["postgres"]
    made.compose("down", "--volumes", "--timeout", "20")
    shutil.rmtree(folder / "data", ignore_errors=True)  # uid 10001's files


def generate(stack: Stack, prompt: str, count: int = 1) -> list[dict[str, Any]]:
    """Tasks queued through nginx, once every one is completed."""
    ids = []
    for n in range(count):
        created = httpx.post(
            stack.url + "/api/v1/generate",
            json={"prompt": f"{prompt} {n}", "num_images": 1},
            verify=stack.tls or True,
        )
        assert created.status_code == 201, created.text
        ids.append(created.json()["task_id"])
    done = []
    for task_id in ids:
        deadline = time.monotonic() + 300  # a safety net for a busy machine
        while (task := stack.get(f"/api/v1/task/{task_id}").json())["status"] != "completed":
            assert task["status"] in ("pending", "processing"), task
            assert time.monotonic() < deadline, task
            time.sleep(0.2)
        done.append(task)
    return done


def workers_started(stack: Stack) -> list[str]:
    return [
        name
        for name, records in stack.logs("worker").items()
        if any(r.get("message") == "runner started" for r in records)
    ]


def test_image_builds_from_the_dockerfile_and_runs_as_its_user() -> None:
    started = time.monotonic()
    built = subprocess.run(
        ["docker", "build", "--network", "host", "-t", "volcimage:latest", str(ROOT)],
        capture_output=True,
        text=True,
        timeout=1200,
    )
    assert built.returncode == 0, built.stdout[-4000:] + built.stderr
    seconds = time.monotonic() - started
    base_name = (ROOT / "Dockerfile").read_text().split("\nFROM ")[-1].split()[0]
    image, base = json.loads(
        subprocess.run(
            ["docker", "image", "inspect", "volcimage:latest", base_name],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
    )
    assert image["Config"]["User"] == f"{UID}:{UID}"
    assert image["Config"]["Healthcheck"]["Test"][0] == "CMD"
    added = (image["Size"] - base["Size"]) / 1e6
    print(f"\nfigure: image built in {seconds:.0f} s, {image['Size'] / 1e6:.0f} MB", end=" ")
    print(f"({added:.0f} MB on top of {base_name})")


def test_stack_comes_up_healthy_on_a_fresh_folder(stack: Stack) -> None:
    """No ./data yet: the engine creates it as root and data-owner hands it to uid 10001."""
    assert not (stack.folder / "data").exists()
    seconds = stack.up()
    print(f"\nfigure: backend + nginx from `up` to healthy in {seconds:.1f} s")
    assert stack.health() == {"backend": "healthy", "nginx": "healthy"}
    data = stack.folder / "data"
    assert data.stat().st_uid == UID and (data / "database.db").stat().st_uid == UID
    # logs on stdout, as JSON, though .env (from .env.example) names a log file
    records = stack.logs("backend")
    assert any(r.get("message") == "runner started" for rs in records.values() for r in rs)
    assert not (stack.folder / "logs").exists()


def test_demo_generation_through_nginx_is_kept_across_a_restart_with_https_on(
    stack: Stack,
) -> None:
    (task,) = generate(stack, "a lighthouse in the fog")
    image = task["images"][0]
    original = stack.get(image["url"] + "?download=1")
    assert original.status_code == 200 and original.content[:2] == b"\xff\xd8"
    assert "x-accel-redirect" not in original.headers, "nginx sent the file itself"
    thumbnail = stack.get(image["thumbnail_url"])
    assert thumbnail.status_code == 200 and thumbnail.content[8:12] == b"WEBP"
    history = stack.get("/api/v1/history").json()
    with pytest.raises(httpx.ConnectError):  # no certificate yet: no HTTPS
        httpx.get(f"https://127.0.0.1:{stack.env['APP_TLS_PORT']}/", verify=False)

    stack.compose("down", "--timeout", "20")
    # the engine made ./certs (root's, empty) for the mount: a certificate there turns HTTPS on
    stack.tls = self_signed(stack.folder / "certs")
    seconds = stack.up()
    print(f"\nfigure: again up and healthy after `down` in {seconds:.1f} s")
    assert stack.get("/api/v1/history").json() == history
    again = stack.get(image["url"] + "?download=1")
    assert again.status_code == 200 and again.content == original.content
    plain = httpx.get(f"http://127.0.0.1:{stack.env['APP_PORT']}/api/v1/history")
    assert plain.status_code == 308 and plain.headers["location"].startswith("https://")


def test_postgres_profile_with_two_workers_runs_every_task_on_a_worker(stack: Stack) -> None:
    stack.compose("down", "--timeout", "20")
    env_file = stack.folder / ".env"
    url = f"postgresql+asyncpg://volcimage:volcimage@127.0.0.1:{stack.env['PG_PORT']}/volcimage"
    env_file.write_text(
        env_file.read_text().replace(
            "DATABASE_URL=sqlite+aiosqlite:///./data/database.db", f"DATABASE_URL={url}"
        )
    )
    stack.profiles = ["postgres"]
    stack.files.append(HERE / "compose.workers.yml")
    started = time.monotonic()
    # not `--wait`: it refuses a service without a health check, as the workers are
    stack.compose("up", "-d", "--scale", "worker=2")
    wanted = {"postgres": "healthy", "backend": "healthy", "nginx": "healthy", "worker": "running"}
    while (health := stack.health()) != wanted or len(workers_started(stack)) < 2:
        assert time.monotonic() - started < 300, health  # a safety net, not a target
        time.sleep(0.5)
    seconds = time.monotonic() - started
    print(f"\nfigure: postgres + backend + nginx healthy, 2 workers started in {seconds:.1f} s")

    tasks = generate(stack, "a harbour at dawn", count=6)
    started: dict[str, str] = {}
    for container, records in stack.logs("worker").items():
        for record in records:
            if record.get("message") == "task started":
                started[record["task_id"]] = container
    assert {t["task_id"] for t in tasks} <= started.keys(), started
    backend = stack.logs("backend")
    assert not any(r.get("message") == "task started" for rs in backend.values() for r in rs)
    split = sorted(list(started.values()).count(c) for c in set(started.values()))
    print(f"figure: 6 tasks done by the workers, split {split}")
    for task in tasks:
        assert stack.get(task["images"][0]["url"]).status_code == 200
