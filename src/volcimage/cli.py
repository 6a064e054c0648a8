"""One CLI: serve | worker | emulator | migrate | user | doctor | cleanup | backup | restore."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import getpass
import logging
import signal
import sys
from pathlib import Path

from volcimage import __version__
from volcimage.catalog.models import load_catalog
from volcimage.core.config import ConfigError, Settings, load_settings
from volcimage.core.errors import VolcImageError
from volcimage.core.logs import configure_logging
from volcimage.core.migrate import migrate

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
    commands.add_parser(
        "doctor", help="check the database, storage and credentials (makes no image, pays nothing)"
    )

    cleanup = commands.add_parser(
        "cleanup", help="remove history and files past MAX_HISTORY_DAYS and MAX_STORAGE_GB"
    )
    cleanup.add_argument("--dry-run", action="store_true", help="say what it would remove")
    backup = commands.add_parser("backup", help="copy the database and image files to DIR")
    backup.add_argument("dir")
    restore = commands.add_parser("restore", help="put a backup of `volcimage backup` back")
    restore.add_argument("dir")
    restore.add_argument("--force", action="store_true", help="overwrite what the target holds")

    user = commands.add_parser("user", help="user accounts (ENABLE_USER_ACCOUNTS)")
    actions = user.add_subparsers(dest="action", required=True)
    create = actions.add_parser("create", help="a new user; asks for the password")
    create.add_argument("username")
    create.add_argument("--admin", action="store_true", help="sees and manages everything")
    create.add_argument("--quota", type=int, help="images a day (default USER_DAILY_IMAGE_QUOTA)")
    create.add_argument("--password-stdin", action="store_true", help="read it from stdin")
    change = actions.add_parser("set", help="change a user")
    change.add_argument("username")
    change.add_argument("--password", action="store_true", help="ask for a new password")
    change.add_argument("--password-stdin", action="store_true", help="new password from stdin")
    change.add_argument("--admin", action=argparse.BooleanOptionalAction)
    change.add_argument("--disabled", action=argparse.BooleanOptionalAction)
    change.add_argument("--quota", type=int, help="images a day; -1 = the default")
    actions.add_parser("list", help="every user")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = load_settings()
        load_catalog().configured(settings)  # a per-model setting must name a catalog model
    except ConfigError as exc:
        print(f"volcimage: {exc}", file=sys.stderr)
        return 2
    configure_logging(settings)
    if args.command == "migrate":
        migrate(settings)
        log.info("database is up to date")
        return 0
    if args.command == "doctor":
        from volcimage.system.doctor import examine, report

        lines, status = report(asyncio.run(examine(settings)))
        print(lines)
        return status
    if args.command == "user":
        migrate(settings)
        try:
            asyncio.run(manage_users(settings, args))
        except VolcImageError as exc:
            print(f"volcimage: {exc.message}", file=sys.stderr)
            return 1
        return 0
    if args.command in ("cleanup", "backup", "restore"):
        if args.command == "cleanup":  # a backup is taken (or put back) as the schema is
            migrate(settings)
        from sqlalchemy.exc import DBAPIError

        try:
            return asyncio.run(COMMANDS[args.command](settings, args))
        except VolcImageError as exc:
            print(f"volcimage: {exc.message}", file=sys.stderr)
            return 1
        except DBAPIError as exc:  # the driver's words: no statement, no parameters
            print(f"volcimage: the database refused: {exc.orig}", file=sys.stderr)
            return 1
    import uvicorn  # here: the one-shot commands above serve nothing

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
        proxy_headers=False,  # the app believes only TRUSTED_PROXIES (app.py)
        timeout_graceful_shutdown=10,
    )
    return 0


async def run_worker(settings: Settings) -> None:
    from volcimage.assemble import build_runner, build_state, start_retention
    from volcimage.events.relay import start_relay
    from volcimage.tasks import reads

    state = build_state(settings)
    stop = asyncio.Event()
    retention, retention_job = start_retention(state, stop)
    runner = build_runner(state, retention)
    relay = await start_relay(
        settings.DATABASE_URL, state.bus, state.sessionmaker, reads.event_of_note
    )
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await runner.run(stop)
    finally:
        retention_job.cancel()  # a run cut short is finished by the next (retention/cleanup.py)
        with contextlib.suppress(asyncio.CancelledError):
            await retention_job
        for provider in runner.providers.values():
            await provider.aclose()
        if relay is not None:
            await relay.stop()
        await state.reads.dispose()
        await state.engine.dispose()


def read_password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\n")
    first = getpass.getpass("Password: ")
    if getpass.getpass("Again: ") != first:
        raise VolcImageError("The two passwords differ")
    return first


async def manage_users(settings: Settings, args: argparse.Namespace) -> None:
    from volcimage.core.db import create_engine, create_sessionmaker
    from volcimage.events.relay import announce_access_change
    from volcimage.users import service

    engine = create_engine(settings)
    try:
        async with create_sessionmaker(engine)() as session:
            if args.action == "list":
                for user in await service.list_users(session):
                    role = "admin" if user.is_admin else "user"
                    state = "disabled" if user.disabled else "active"
                    quota = "default" if user.daily_image_quota is None else user.daily_image_quota
                    print(f"{user.username}\t{role}\t{state}\tquota={quota}")
                return
            if args.action == "create":
                password = read_password(args.password_stdin)
                user = await service.create_user(
                    session,
                    args.username,
                    password,
                    is_admin=args.admin,
                    daily_image_quota=args.quota,
                )
            else:
                user = await service.get_user(session, args.username)
                new_password = None
                if args.password or args.password_stdin:
                    new_password = read_password(args.password_stdin)
                await service.update_user(
                    session,
                    user,
                    password=new_password,
                    is_admin=args.admin,
                    disabled=args.disabled,
                    daily_image_quota=args.quota
                    if args.quota is not None and args.quota >= 0
                    else None,
                    default_quota=args.quota is not None and args.quota < 0,
                )
                await announce_access_change(session, user.id)
            await session.commit()
            print(f"user {user.username} saved" + (" (admin)" if user.is_admin else ""))
    finally:
        await engine.dispose()


async def cleanup_command(settings: Settings, args: argparse.Namespace) -> int:
    from volcimage.core.db import create_engine, create_sessionmaker
    from volcimage.retention.cleanup import describe, limits_of
    from volcimage.retention.schedule import Retention
    from volcimage.storage import build_store

    engine = create_engine(settings)
    try:
        retention = Retention(settings, create_sessionmaker(engine), build_store(settings))
        outcome = await retention.run("cli", dry_run=args.dry_run)
    finally:
        await engine.dispose()
    if outcome is None:
        print("volcimage: another process is cleaning up; try again later", file=sys.stderr)
        return 1
    print("\n".join(describe(outcome, limits_of(settings))))
    return 0


async def backup_command(settings: Settings, args: argparse.Namespace) -> int:
    from volcimage.backups.copy import back_up

    print("\n".join(await back_up(settings, Path(args.dir))))
    return 0


async def restore_command(settings: Settings, args: argparse.Namespace) -> int:
    from volcimage.backups.copy import restore

    print("\n".join(await restore(settings, Path(args.dir), force=args.force)))
    return 0


COMMANDS = {"cleanup": cleanup_command, "backup": backup_command, "restore": restore_command}
