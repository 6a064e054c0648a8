"""A process that imports volcimage once and forks a child for each `volcimage` command a test
starts (`python -m tests.prefork`), and the test process's side of it (`Prefork`, `Command`).

A command run as `python -m volcimage` spends ~2 s of CPU importing before it does anything
(~3 s under coverage); the suite starts ~170 of them. A forked child skips that and is still a
process of its own: its own environment, directory, log and signals, killed like any other. It
runs `volcimage.cli.main` as `__main__.py` would, then exits as an interpreter does (threads
joined, atexit run: coverage saves the child's data, `patch = fork`).

Protocol, one JSON line each way on stdin/stdout, each with the request's "id": {"run": [args],
"env", "cwd", "stdin", "stdout", "stderr"} → {"pid"}; {"status": pid} → {"code": exit code or
null while it runs}.
"""

from __future__ import annotations

import atexit
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import alembic.command
import uvicorn.lifespan.on
import uvicorn.loops.uvloop
import uvicorn.protocols.http.httptools_impl
import uvicorn.protocols.websockets.auto

import volcimage.app
import volcimage.backups.copy
import volcimage.cli
import volcimage.emulator.app
import volcimage.retention.cleanup
import volcimage.system.doctor
import volcimage.users.service

# what the children would import at their start (named here, so no linter drops an import)
PRELOADED = (
    alembic.command,
    uvicorn.lifespan.on,
    uvicorn.loops.uvloop,
    uvicorn.protocols.http.httptools_impl,
    uvicorn.protocols.websockets.auto,
    volcimage.app,
    volcimage.backups.copy,
    volcimage.emulator.app,
    volcimage.retention.cleanup,
    volcimage.system.doctor,
    volcimage.users.service,
)


def _reply(request: dict[str, Any], message: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps({**message, "id": request["id"]}) + "\n")
    sys.stdout.flush()


def serve() -> dict[str, Any] | None:
    """Answers requests until stdin closes; returns a command's request in its forked child."""
    for line in sys.stdin:
        request = json.loads(line)
        if "run" in request:
            pid = os.fork()
            if pid == 0:
                return dict(request)
            _reply(request, {"pid": pid})
        else:
            pid = int(request["status"])
            done, status = os.waitpid(pid, os.WNOHANG)
            _reply(request, {"code": os.waitstatus_to_exitcode(status) if done else None})
    return None


def become(request: dict[str, Any]) -> None:
    """This child as the command's process: its streams, environment, directory and argv."""
    streams = (
        os.open(request["stdin"] or os.devnull, os.O_RDONLY),
        os.open(request["stdout"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644),
        os.open(request["stderr"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644),
    )
    for target, fd in enumerate(streams):
        os.dup2(fd, target)
        os.close(fd)
    sys.stdin = open(0, encoding="utf-8", closefd=False)  # noqa: SIM115 - the process's own
    sys.stdout = open(1, "w", encoding="utf-8", closefd=False)  # noqa: SIM115
    sys.stderr = open(2, "w", encoding="utf-8", closefd=False, buffering=1)  # noqa: SIM115
    os.environ.clear()
    os.environ.update(request["env"])
    os.chdir(request["cwd"])
    sys.argv = ["volcimage", *request["run"]]


class Prefork:
    """The test process's side: `python -m tests.prefork` of its own, started on first use."""

    def __init__(self) -> None:
        self._process: subprocess.Popen[str] | None = None
        self._lock = threading.Lock()
        self._asked = 0

    def ask(self, request: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            if self._process is None:
                self._process = subprocess.Popen(
                    [sys.executable, "-m", "tests.prefork"],
                    cwd=Path(__file__).resolve().parents[1],
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    text=True,
                )
                atexit.register(self.close)
            assert self._process.stdin is not None and self._process.stdout is not None
            self._asked += 1
            self._process.stdin.write(json.dumps({**request, "id": self._asked}) + "\n")
            self._process.stdin.flush()
            while True:  # an answer to a request a timed-out test left unread is skipped
                line = self._process.stdout.readline()
                assert line, f"tests.prefork ended ({self._process.wait()})"
                answer = json.loads(line)
                if answer.pop("id") == self._asked:
                    return dict(answer)

    def close(self) -> None:
        """Its stdin closed, it ends as a process does (coverage saves what its imports ran)."""
        if self._process is not None and self._process.stdin is not None:
            self._process.stdin.close()
            self._process.wait(30)


PREFORK = Prefork()


class Command:
    """A `volcimage` command in a process of its own (forked by `PREFORK`), with the part of
    `subprocess.Popen` the tests use."""

    def __init__(
        self, args: list[str], env: dict[str, str], cwd: Path, output: Path, **streams: str
    ) -> None:
        self.args = args
        self.returncode: int | None = None
        self.pid = int(
            PREFORK.ask(
                {
                    "run": args,
                    "env": {**os.environ, **env},
                    "cwd": str(cwd),
                    "stdin": streams.get("stdin", ""),
                    "stdout": str(output),
                    "stderr": streams.get("stderr", str(output)),
                }
            )["pid"]
        )

    def poll(self) -> int | None:
        if self.returncode is None:
            self.returncode = PREFORK.ask({"status": self.pid})["code"]
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        while (code := self.poll()) is None:
            if deadline is not None and time.monotonic() > deadline:
                raise subprocess.TimeoutExpired(self.args, timeout or 0)
            time.sleep(0.02)
        return code

    def send_signal(self, sig: int) -> None:
        if self.poll() is None:  # not reaped: the pid is still this process (or its zombie)
            os.kill(self.pid, sig)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)


if __name__ == "__main__":
    command = serve()
    if command is not None:
        become(command)
        raise SystemExit(volcimage.cli.main(command["run"]))
