"""A process that imports volcimage once and forks a child for each `volcimage` command a test
starts (`python -m tests.prefork`, driven by `tests/support.py`).

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

import json
import os
import sys
from typing import Any

import alembic.command
import uvicorn.lifespan.on
import uvicorn.loops.uvloop
import uvicorn.protocols.http.httptools_impl
import uvicorn.protocols.websockets.websockets_impl

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
    uvicorn.protocols.websockets.websockets_impl,
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


if __name__ == "__main__":
    command = serve()
    if command is not None:
        become(command)
        raise SystemExit(volcimage.cli.main(command["run"]))
