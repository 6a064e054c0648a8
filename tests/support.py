"""Helpers for tests: environments for volcimage processes, real servers on free ports, and
waiting on tasks through the API."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import io
import json
import os
import pwd
import re
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from collections.abc import Iterator
from http.cookiejar import Cookie, CookieJar, DefaultCookiePolicy
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import asyncpg
import httpx
import uvicorn
from PIL import Image as PILImage
from PIL import ImageDraw
from sqlalchemy import select
from volcengine.auth.SignerV4 import SignerV4
from volcengine.base.Request import Request
from volcengine.Credentials import Credentials

from tests.prefork import Command
from volcimage.core.config import Settings, load_settings
from volcimage.core.db import create_engine, create_sessionmaker
from volcimage.emulator.visual import DEMO_ACCESS_KEY, DEMO_SECRET_KEY
from volcimage.tasks.models import UpstreamCall

PG_ADMIN_DSN = os.environ.get("VOLCIMAGE_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")


class _NoCookies(DefaultCookiePolicy):
    def set_ok(self, cookie: Cookie, request: urllib.request.Request) -> bool:
        return False


# The tests' plain requests to local servers: each `httpx.get` builds its own TLS context
# (~25 ms of CPU, paid ten times a second by a poll loop). As `httpx.get` would, this one keeps
# no cookie and reuses no connection.
local = httpx.Client(
    cookies=CookieJar(policy=_NoCookies()),
    limits=httpx.Limits(max_keepalive_connections=0),
    trust_env=False,
)


async def drop_connections(database_url: str) -> int:
    """Terminates every connection to the test's PostgreSQL database, as a restart would."""
    admin = await asyncpg.connect(PG_ADMIN_DSN)
    try:
        return int(
            await admin.fetchval(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = $1 AND pid <> pg_backend_pid()",
                database_url.rsplit("/", 1)[1],
            )
        )
    finally:
        await admin.close()


_PORTS = Path(tempfile.gettempdir()) / "volcimage-test-ports"


def free_port() -> int:
    """A port that binds now and that no other test process of this machine was handed: counted
    from a file under a lock, below the kernel's ephemeral range. A port the kernel picked (bind
    to 0) went free on close, and another test's server, or any client's own end of a
    connection, could take it before ours bound it (a test then talked to the wrong server)."""
    low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    first = max(1024, low - 12000)
    with _PORTS.open("a+") as counter:
        fcntl.flock(counter, fcntl.LOCK_EX)
        counter.seek(0)
        port = int(counter.read() or first)
        while True:
            port = port + 1 if first <= port < low - 1 else first
            with socket.socket() as sock:
                try:
                    sock.bind(("127.0.0.1", port))
                except OSError:
                    continue
            counter.seek(0)
            counter.truncate()
            counter.write(str(port))
            return port


@contextlib.contextmanager
def serve_app(app: Any) -> Iterator[str]:
    """An ASGI app under uvicorn in a thread of this process, on a free port; yields its URL."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 120  # a safety net for a busy machine
    while not server.started:
        assert time.monotonic() < deadline, "the server did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


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
        "EMULATOR_LATENCY_JITTER": "0",
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


async def upload(client: httpx.AsyncClient, width: int, height: int, fmt: str = "PNG") -> str:
    """Uploads a generated picture as a reference image; returns its upload id."""
    from volcimage.emulator.render import render_image

    data = render_image("a reference", 3, width, height, fmt=fmt)
    files = {"file": ("ref." + fmt.lower(), data, "application/octet-stream")}
    response = await client.post("/api/v1/uploads", files=files)
    assert response.status_code == 201, response.text
    return str(response.json()["upload_id"])


async def upload_mask(client: httpx.AsyncClient, width: int, height: int) -> str:
    """Uploads a grayscale inpaint mask (white: redraw) of this size; returns its upload id."""
    mask = PILImage.new("L", (width, height), 0)
    ImageDraw.Draw(mask).ellipse([(width // 4, height // 4), (width // 2, height // 2)], fill=255)
    out = io.BytesIO()
    mask.save(out, "PNG")
    files = {"file": ("mask.png", out.getvalue(), "application/octet-stream")}
    response = await client.post("/api/v1/uploads", files=files)
    assert response.status_code == 201, response.text
    return str(response.json()["upload_id"])


async def wait_for_task(
    client: httpx.AsyncClient, task_id: str, timeout: float = 120.0
) -> dict[str, Any]:
    """Follows the task over the API until it reaches a final state."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        task = (await client.get(f"/api/v1/task/{task_id}")).json()
        if task["status"] in ("completed", "failed", "cancelled"):
            return dict(task)
        await asyncio.sleep(0.05)
    raise AssertionError(f"task {task_id} did not finish in {timeout} s: {task}")


def wait_task(url: str, task_id: str, timeout: float = 120) -> dict[str, Any]:
    """Follows a task over HTTP (from a test that is not async) until it is final."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        task = local.get(f"{url}/api/v1/task/{task_id}").json()
        if task["status"] in ("completed", "failed", "cancelled"):
            return dict(task)
        time.sleep(0.1)
    raise AssertionError(f"task not finished: {task}")


def volcimage(
    env: dict[str, str], cwd: Path, *args: str, stdin: str = ""
) -> subprocess.CompletedProcess[str]:
    """Runs a `volcimage` command to its end, as an operator would in a shell."""
    files = cwd / f"command-{uuid.uuid4().hex[:8]}"
    files.mkdir(parents=True)
    (files / "stdin").write_text(stdin, "utf-8")
    command = Command(
        list(args),
        env,
        cwd,
        files / "stdout",
        stdin=str(files / "stdin"),
        stderr=str(files / "stderr"),
    )
    try:
        code = command.wait(60)
    except subprocess.TimeoutExpired:
        command.kill()
        raise
    read = {name: (files / name).read_text("utf-8") for name in ("stdout", "stderr")}
    return subprocess.CompletedProcess(list(args), code, read["stdout"], read["stderr"])


@contextlib.contextmanager
def serving(root: Path, database_url: str | None = None, **settings: Any) -> Iterator[Server]:
    """`volcimage serve` in demo mode (SQLite in `root` unless told), ready, on a free port."""
    port = free_port()
    url = database_url or f"sqlite+aiosqlite:///{root}/data/database.db"
    server = Server(["serve", "--port", str(port)], process_env(root, url, **settings), root, port)
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()


class Server:
    """A volcimage command running as a real process on a free port."""

    def __init__(self, args: list[str], env: dict[str, str], cwd: Path, port: int) -> None:
        self.env = env
        self.cwd = cwd
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.log_path = cwd / f"server-{port}.log"
        self.process = Command(args, env, cwd, self.log_path)

    def wait_ready(self, path: str = "/api/v1/health", timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"server exited: {self.log_path.read_text()}")
            try:
                if local.get(self.url + path, timeout=1).status_code < 500:
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


S3_BUCKET = "studio-images"


@contextlib.contextmanager
def moto_s3() -> Iterator[str]:
    """moto's S3 server on a free local port; yields its URL."""
    port = free_port()
    server = subprocess.Popen(
        [str(Path(sys.executable).parent / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120  # a safety net for a busy machine
    try:
        while True:
            try:
                local.get(url, timeout=1)
                break
            except httpx.HTTPError:
                assert time.monotonic() < deadline, "moto_server did not start"
                time.sleep(0.1)
        yield url
    finally:
        server.terminate()
        server.wait(10)


def s3_settings(url: str, prefix: str, presign: bool) -> dict[str, str]:
    return {
        "STORAGE_BACKEND": "s3",
        "S3_ENDPOINT_URL": url,
        "S3_BUCKET": S3_BUCKET,
        "S3_PREFIX": prefix,
        "S3_ACCESS_KEY_ID": "testing",
        "S3_SECRET_ACCESS_KEY": "testing-secret",
        "S3_PRESIGNED_DOWNLOADS": str(presign).lower(),
    }


def start_process(args: list[str], env: dict[str, str], cwd: Path) -> Command:
    return Command(args, env, cwd, cwd / f"{args[0]}-{uuid.uuid4().hex[:6]}.log")


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
        emulator = self.state.emulator  # none when Ark calls go to the real API
        self.emulator = emulator.state.emulator if emulator is not None else None

    async def generate(self, **body: Any) -> dict[str, Any]:
        payload = {"prompt": "a lighthouse", "model": "seedream-3.0", **body}
        response = await self.client.post("/api/v1/generate", json=payload)
        assert response.status_code == 201, response.text
        return dict(response.json())

    async def run(self, **body: Any) -> dict[str, Any]:
        return await wait_for_task(self.client, (await self.generate(**body))["task_id"])

    def new_client(self) -> httpx.AsyncClient:
        """Another browser: its own cookies, the same app."""
        transport = httpx.ASGITransport(app=self.app)
        return httpx.AsyncClient(transport=transport, base_url="http://test")

    async def sign_in(self, client: httpx.AsyncClient | None = None, **body: Any) -> dict[str, Any]:
        """POST /session, then send the CSRF token with every later request, as the page does."""
        client = client or self.client
        response = await client.post("/api/v1/session", json=body)
        assert response.status_code == 200, response.text
        client.headers["X-CSRF-Token"] = response.json()["csrf_token"]
        return dict(response.json())


ROOT = Path(__file__).resolve().parent.parent
NGINX_TEMPLATE = ROOT / "deploy" / "nginx" / "default.conf.template"
STATIC_ROOT = ROOT / "src" / "volcimage" / "web" / "static"
NGINX_MAIN = """user {user};
worker_processes 1;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log warn;
events {{ worker_connections 512; }}
http {{
    include /etc/nginx/mime.types;
    default_type application/octet-stream;
    access_log {tmp}/access.log;
    client_body_temp_path {tmp}/client_body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    include {tmp}/default.conf;
}}
"""


def render_nginx_template(values: dict[str, str]) -> str:
    """What the nginx image's envsubst does with the filter of docker-compose.yml."""
    text = NGINX_TEMPLATE.read_text()
    for name, value in values.items():
        text = text.replace("${" + name + "}", value)
    leftover = re.findall(r"\$\{[A-Z_]+\}", text)
    assert not leftover, f"template variables without a value: {leftover}"
    return text


@contextlib.contextmanager
def behind_nginx(root: Path, **settings: Any) -> Iterator[tuple[Server, Nginx]]:
    """`volcimage serve` in demo mode on SQLite with the deployment's nginx in front, as in
    docker-compose (X-Accel-Redirect on)."""
    port = free_port()
    env = process_env(
        root,
        f"sqlite+aiosqlite:///{root}/data/database.db",
        APP_PORT=port,
        X_ACCEL_REDIRECT="true",
        TRUSTED_PROXIES="127.0.0.1",  # nginx, as docker-compose trusts it
        **settings,
    )
    server = Server(["serve"], env, root, port)
    nginx = Nginx(root, port, root / "data")
    try:
        server.wait_ready()
        nginx.start()
        yield server, nginx
    finally:
        nginx.stop()
        server.stop()


def self_signed(directory: Path) -> ssl.SSLContext:
    """A certificate for 127.0.0.1 where the compose file mounts ./certs; a client trusting it."""
    directory.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"),
            *("-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"),
            *("-keyout", str(directory / "privkey.pem"), "-out", str(directory / "fullchain.pem")),
        ],
        check=True,
        capture_output=True,
    )
    return ssl.create_default_context(cafile=directory / "fullchain.pem")


class Nginx:
    """The real nginx binary, unprivileged, with the deploy template in front of a backend."""

    BINARY = shutil.which("nginx") or "/usr/sbin/nginx"

    def __init__(self, tmp: Path, backend_port: int, data: Path) -> None:
        self.dir = tmp / "nginx"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port, self.tls_port = free_port(), free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.tls_url = f"https://127.0.0.1:{self.tls_port}"
        # HTTPS is on when a certificate is put here before start (deploy/nginx/tls.sh)
        self.tls_dir = self.dir / "certs"
        server = render_nginx_template(
            {
                "BACKEND_UPSTREAM": f"127.0.0.1:{backend_port}",
                "NGINX_PORT": f"127.0.0.1:{self.port}",
                "NGINX_TLS_PORT": f"127.0.0.1:{self.tls_port}",
                "TLS_DIR": str(self.tls_dir),
                "TLS_PUBLIC_PORT": str(self.tls_port),
                "STATIC_ROOT": str(STATIC_ROOT),
                "IMAGE_ROOT": str(data / "images"),
                "THUMBNAIL_ROOT": str(data / "thumbnails"),
                "UPLOAD_ROOT": str(data / "uploads"),
                "MAX_UPLOAD_SIZE": "32m",
            }
        )
        (self.dir / "default.conf").write_text(server)
        self.conf = self.dir / "nginx.conf"
        # workers run as this user (not nginx's default) so they can read the test's files
        user = pwd.getpwuid(os.getuid()).pw_name
        self.conf.write_text(NGINX_MAIN.format(tmp=self.dir, user=user))
        self.process: subprocess.Popen[bytes] | None = None

    def command(self, *extra: str) -> list[str]:
        return [self.BINARY, "-p", str(self.dir), "-c", str(self.conf), *extra]

    def switch_tls(self) -> str:
        """What the nginx image runs before nginx starts (docker-compose.yml mounts it)."""
        env = {
            **os.environ,
            "NGINX_CONF": str(self.dir / "default.conf"),
            "TLS_DIR": str(self.tls_dir),
        }
        script = NGINX_TEMPLATE.parent / "tls.sh"
        return subprocess.run(
            ["sh", str(script)], env=env, check=True, capture_output=True, text=True
        ).stdout

    def test_config(self) -> subprocess.CompletedProcess[str]:
        self.switch_tls()
        return subprocess.run(self.command("-t"), capture_output=True, text=True, check=False)

    def start(self) -> None:
        self.switch_tls()
        self.process = subprocess.Popen(
            self.command("-g", "daemon off;"), stderr=(self.dir / "stderr.log").open("wb")
        )
        deadline = time.monotonic() + 120  # a safety net for a busy machine
        while time.monotonic() < deadline:
            try:
                local.get(self.url + "/static/favicon.svg", timeout=1)
                return
            except httpx.HTTPError:
                time.sleep(0.05)
        raise AssertionError((self.dir / "error.log").read_text())

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)


class Stack:
    """`volcimage emulator`, API processes without runners, and workers, all real processes in
    real mode against the emulator (so its call counters see every process's calls)."""

    def __init__(self, tmp_path: Path, database_url: str, apis: int, **settings: Any) -> None:
        self.tmp_path = tmp_path
        emulator_env = {k: v for k, v in settings.items() if k.startswith(("EMULATOR_", "VOLC_"))}
        emulator_env.pop("VOLC_BASE_URL", None)
        port = free_port()
        self.emulator = Server(
            ["emulator", "--port", str(port)],
            process_env(tmp_path, database_url, **emulator_env),
            tmp_path,
            port,
        )
        app_settings = {
            "VOLC_PROVIDER_MODE": "real",
            "ARK_API_KEY": "stack-ark-key",
            "ARK_BASE_URL": f"{self.emulator.url}/api/v3",
            "VOLC_BASE_URL": f"{self.emulator.url}/visual",
            "TASK_LEASE_SECONDS": 2,  # dead workers' tasks come back fast
            **{k: v for k, v in settings.items() if not k.startswith("EMULATOR_")},
        }
        self.env = process_env(tmp_path, database_url, **app_settings)
        self.apis = []
        for _ in range(apis):
            api_port = free_port()
            self.apis.append(
                Server(
                    ["serve", "--no-runner", "--port", str(api_port)], self.env, tmp_path, api_port
                )
            )
        self.workers: list[Command] = []

    @property
    def api(self) -> Server:
        return self.apis[0]

    def __enter__(self) -> Stack:
        try:
            self.emulator.wait_ready("/_emulator/stats")
            for api in self.apis:
                api.wait_ready()
        except BaseException:
            self.__exit__()
            raise
        return self

    def start_worker(self) -> Command:
        worker = start_process(["worker"], self.env, self.tmp_path)
        self.workers.append(worker)
        return worker

    def emulator_stats(self, path: str = "/_emulator/stats") -> dict[str, int]:
        return dict(local.get(self.emulator.url + path).json())

    def __exit__(self, *_exc: object) -> None:
        for worker in self.workers:
            if worker.poll() is None:
                worker.terminate()
        for worker in self.workers:
            worker.wait(15)
        for api in self.apis:
            api.stop()
        self.emulator.stop()


def signed_request(
    body: dict[str, Any],
    *,
    ak: str = DEMO_ACCESS_KEY,
    sk: str = DEMO_SECRET_KEY,
    region: str = "cn-north-1",
    service: str = "cv",
    action: str = "CVSync2AsyncSubmitTask",
) -> tuple[str, dict[str, str], bytes]:
    """Signed by the `volcengine` SDK's SignerV4 (the provider uses the SDK core's): (url,
    headers, body)."""
    payload = json.dumps(body)
    request = Request()
    request.method = "POST"
    request.path = "/visual"
    request.query = {"Action": action, "Version": "2022-08-31"}
    request.headers = {"Content-Type": "application/json", "Host": "emulator"}
    request.body = payload
    SignerV4.sign(request, Credentials(ak, sk, service, region))
    url = f"http://emulator/visual?{urlencode(request.query)}"
    return url, dict(request.headers), payload.encode()


def jpeg_claiming(width: int, height: int) -> bytes:
    """A small JPEG whose header (SOF0) gives these dimensions, as a huge photo's does."""
    out = io.BytesIO()
    PILImage.new("RGB", (16, 16)).save(out, "JPEG")
    raw = bytearray(out.getvalue())
    sof = raw.index(b"\xff\xc0")
    raw[sof + 5 : sof + 9] = height.to_bytes(2, "big") + width.to_bytes(2, "big")
    return bytes(raw)
