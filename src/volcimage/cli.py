"""One CLI: serve | worker | emulator | migrate."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys

import uvicorn

from volcimage import __version__
from volcimage.config import ConfigError, Settings, load_settings
from volcimage.logs import configure_logging
from volcimage.migrate import migrate

log = logging.getLogger("volcimage.cli")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="volcimage", description=__doc__)
    parser.add_argument("--version", action="version", version=__version__)
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="web app and API (runs tasks too unless --no-runner)")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    serve.add_argument("--no-runner", action="store_true", help="leave tasks to `volcimage worker`")

    commands.add_parser("worker", help="run tasks only (several may share one PostgreSQL)")

    emulator = commands.add_parser("emulator", help="the VolcEngine emulator as its own server")
    emulator.add_argument("--host", default="127.0.0.1")
    emulator.add_argument("--port", type=int, default=9090)

    commands.add_parser("migrate", help="upgrade the database schema")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = load_settings()
    except ConfigError as exc:
        print(f"volcimage: {exc}", file=sys.stderr)
        return 2
    configure_logging(settings)
    if args.command == "migrate":
        migrate(settings)
        log.info("database is up to date")
        return 0
    if args.command == "emulator":
        from volcimage.emulator.app import create_emulator_app

        uvicorn.run(create_emulator_app(settings), host=args.host, port=args.port, log_config=None)
        return 0
    migrate(settings)
    if args.command == "worker":
        asyncio.run(run_worker(settings))
        return 0
    host, port = args.host or settings.APP_HOST, args.port or settings.APP_PORT
    if settings.HOT_RELOAD:  # development: reload on source changes (settings from the env)
        uvicorn.run("volcimage.app:create_app", factory=True, reload=True, host=host, port=port)
        return 0
    from volcimage.app import create_app

    app = create_app(settings, run_tasks=not args.no_runner)
    uvicorn.run(
        app,
        host=host,
        port=port,
        log_config=None,
        proxy_headers=True,
        timeout_graceful_shutdown=10,
    )
    return 0


async def run_worker(settings: Settings) -> None:
    from volcimage.app import build_runner, build_state
    from volcimage.tasks.relay import start_relay

    state = build_state(settings)
    runner = build_runner(state)
    relay = await start_relay(settings.DATABASE_URL, state.bus, state.sessionmaker)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await runner.run(stop)
    finally:
        for provider in runner.providers.values():
            await provider.aclose()
        if relay is not None:
            await relay.stop()
        await state.engine.dispose()
