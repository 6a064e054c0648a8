"""Issue 14's access findings, driven from outside: open sockets and event streams end with their
session (in every process), guessing is throttled whatever the credentials and whatever
forwarding headers say, other sites' pages cannot make changes, the API key's page sign-in ends
with sign-out, and only admins drive the demo emulator."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import ClientConnection, connect

from tests.support import Server, serving, volcimage
from volcimage.audit.models import AuditEntry
from volcimage.core.config import load_settings
from volcimage.core.db import create_engine, create_sessionmaker
from volcimage.tasks.models import Task
from volcimage.users import service as users

ACCOUNTS = {"ENABLE_USER_ACCOUNTS": "true"}
KEY = "team-key-4f9a1c"
COOKIE = "volcimage_session"


async def _in_database(database_url: str, work: Any) -> Any:
    engine = create_engine(load_settings(_env_file=None, DATABASE_URL=database_url))
    try:
        async with create_sessionmaker(engine)() as session:
            result = await work(session)
            await session.commit()
            return result
    finally:
        await engine.dispose()


def add_users(database_url: str, **admins: bool) -> None:
    async def work(session: Any) -> None:
        for name, admin in admins.items():
            await users.create_user(session, name, f"{name}-password", is_admin=admin)

    asyncio.run(_in_database(database_url, work))


def task_count(database_url: str) -> int:
    async def work(session: Any) -> int:
        return int(await session.scalar(select(func.count(Task.id))) or 0)

    return int(asyncio.run(_in_database(database_url, work)))


def sign_in(server: Server, name: str) -> httpx.Client:
    client = httpx.Client(base_url=server.url, timeout=30)
    login = client.post("/api/v1/session", json={"username": name, "password": f"{name}-password"})
    assert login.status_code == 200, login.text
    client.headers["X-CSRF-Token"] = login.json()["csrf_token"]
    return client


@contextlib.contextmanager
def open_socket(server: Server, token: str) -> Iterator[ClientConnection]:
    """The WebSocket, opened by a signed-in page (its session cookie, its origin)."""
    headers = {"Cookie": f"{COOKIE}={token}", "Origin": server.url}
    url = server.url.replace("http://", "ws://") + "/api/v1/generate/stream"
    with connect(url, additional_headers=headers, open_timeout=10) as socket:
        assert json.loads(socket.recv(timeout=10)) == {"type": "ready"}
        yield socket


def closed_code(socket: ClientConnection) -> int:
    """Reads until the server closes the socket; its close code."""
    with pytest.raises(ConnectionClosed) as closed:
        while True:
            socket.recv(timeout=30)
    assert closed.value.rcvd is not None
    return closed.value.rcvd.code


@contextlib.contextmanager
def two_processes(tmp_path: Path, database_url: str) -> Iterator[tuple[Server, Server]]:
    """Two API processes on PostgreSQL (events relayed between them); one on SQLite."""
    with serving(tmp_path, database_url, TASK_LEASE_SECONDS=3, **ACCOUNTS) as first:
        if database_url.startswith("sqlite"):
            yield first, first
            return
        with serving(tmp_path, database_url, TASK_LEASE_SECONDS=3, **ACCOUNTS) as second:
            yield first, second


def test_sign_out_closes_the_sessions_socket_and_stream_in_every_process(
    tmp_path: Path, database_url: str
) -> None:
    with two_processes(tmp_path, database_url) as (here, there):
        add_users(database_url, alice=False)
        alice = sign_in(here, "alice")
        token = alice.cookies[COOKIE]
        cookie = {"Cookie": f"{COOKIE}={token}"}
        with (
            open_socket(there, token) as socket,
            httpx.Client(base_url=there.url, timeout=30, headers=cookie) as reader,
            reader.stream("GET", "/api/v1/events") as stream,
        ):
            lines = stream.iter_lines()
            assert next(lines) == "event: ready"
            assert alice.delete("/api/v1/session").status_code == 204
            assert closed_code(socket) == 1008
            rest = list(lines)  # the stream ends: no read timeout
        assert not [line for line in rest if line.startswith('data: {"')], rest
        with pytest.raises(InvalidStatus, match="403"), open_socket(there, token):
            pass
        assert task_count(database_url) == 0


def test_a_socket_whose_user_was_disabled_elsewhere_queues_nothing(
    tmp_path: Path, database_url: str
) -> None:
    """Disabled by the CLI (another process): a command sent before the socket heard of it
    finds out and queues nothing (on PostgreSQL the socket may be closed already)."""
    with serving(tmp_path, database_url, TASK_LEASE_SECONDS=3, **ACCOUNTS) as server:
        add_users(database_url, alice=False)
        with open_socket(server, sign_in(server, "alice").cookies[COOKIE]) as socket:
            disabled = volcimage(server.env, tmp_path, "user", "set", "alice", "--disabled")
            assert disabled.returncode == 0, disabled.stderr
            with contextlib.suppress(ConnectionClosed):
                socket.send(json.dumps({"type": "generate", "prompt": "after she was disabled"}))
            assert closed_code(socket) == 1008
        assert task_count(database_url) == 0


def test_a_socket_whose_user_the_cli_disabled_closes_by_itself(
    tmp_path: Path, database_url: str
) -> None:
    """No command needed: on PostgreSQL the CLI's notice reaches every process at once (no
    re-check would come in time); on SQLite (no channel between processes) the idle socket
    re-checks every SESSION_RECHECK_SECONDS."""
    recheck = 1 if database_url.startswith("sqlite") else 3600
    with serving(
        tmp_path, database_url, TASK_LEASE_SECONDS=3, SESSION_RECHECK_SECONDS=recheck, **ACCOUNTS
    ) as server:
        add_users(database_url, alice=False)
        with open_socket(server, sign_in(server, "alice").cookies[COOKIE]) as socket:
            disabled = volcimage(server.env, tmp_path, "user", "set", "alice", "--disabled")
            assert disabled.returncode == 0, disabled.stderr
            assert closed_code(socket) == 1008


def test_disabling_or_a_new_password_closes_the_sockets_it_signs_out(
    tmp_path: Path, database_url: str
) -> None:
    with serving(tmp_path, database_url, TASK_LEASE_SECONDS=3, **ACCOUNTS) as server:
        add_users(database_url, boss=True, alice=False, carol=False)
        boss, carol = sign_in(server, "boss"), sign_in(server, "carol")
        with open_socket(server, carol.cookies[COOKIE]) as carols:
            assert boss.patch("/api/v1/users/carol", json={"disabled": True}).status_code == 200
            assert closed_code(carols) == 1008
        kept, other = sign_in(server, "alice"), sign_in(server, "alice")
        with (
            open_socket(server, other.cookies[COOKIE]) as ended,
            open_socket(server, kept.cookies[COOKIE]) as staying,
        ):
            changed = kept.put(
                "/api/v1/session/password",
                json={"current_password": "alice-password", "new_password": "alice-new-secret"},
            )
            assert changed.status_code == 204
            assert closed_code(ended) == 1008
            staying.send(json.dumps({"type": "generate", "prompt": "still signed in"}))
            replies = [json.loads(staying.recv(timeout=30))]
            while replies[-1]["type"] != "task.queued":
                replies.append(json.loads(staying.recv(timeout=30)))


def until_completed(socket: ClientConnection) -> list[dict[str, Any]]:
    """The socket's messages up to the first completed task."""
    seen = [json.loads(socket.recv(timeout=30))]
    while seen[-1].get("task", {}).get("status") != "completed":
        seen.append(json.loads(socket.recv(timeout=30)))
    return seen


def test_a_demoted_admins_socket_and_stream_show_only_their_own_tasks(
    tmp_path: Path, database_url: str
) -> None:
    with serving(tmp_path, database_url, TASK_LEASE_SECONDS=3, **ACCOUNTS) as server:
        add_users(database_url, root=True, boss=True, alice=False)
        root, boss, alice = (sign_in(server, n) for n in ("root", "boss", "alice"))
        cookie = {"Cookie": f"{COOKIE}={boss.cookies[COOKIE]}"}
        with (
            open_socket(server, boss.cookies[COOKIE]) as socket,
            open_socket(server, alice.cookies[COOKIE]) as alices,
            httpx.Client(base_url=server.url, timeout=30, headers=cookie) as reader,
            reader.stream("GET", "/api/v1/events") as stream,
        ):
            lines = stream.iter_lines()
            assert next(lines) == "event: ready"
            assert root.patch("/api/v1/users/boss", json={"is_admin": False}).status_code == 200
            # alice's task runs to its end before boss asks for his
            alices.send(json.dumps({"type": "generate", "prompt": "alice's"}))
            theirs = {m["task"]["task_id"] for m in until_completed(alices) if "task" in m}
            socket.send(json.dumps({"type": "generate", "prompt": "the boss's own"}))
            seen = until_completed(socket)
            streamed = []
            for line in lines:
                if line.startswith("data: ") and line != "data: {}":
                    streamed.append(json.loads(line[6:]))
                    if streamed[-1]["task"].get("status") == "completed":
                        break
        mine = {m["task"]["task_id"] for m in seen if "task" in m}
        assert len(theirs) == 1 and len(mine) == 1 and not theirs & mine, seen
        assert {e["task"]["task_id"] for e in streamed} == mine, streamed


async def test_the_api_keys_page_sign_in_is_its_own_and_sign_out_ends_it(
    make_studio: Any,
) -> None:
    async with make_studio(ENABLE_API_KEY_AUTH="true", API_KEY=KEY) as studio:
        first, second = studio.new_client(), studio.new_client()
        for client in (first, second):
            await studio.sign_in(client, api_key=KEY)
        kept, csrf = first.cookies[COOKIE], first.headers["X-CSRF-Token"]
        assert kept != second.cookies[COOKIE] and KEY not in kept
        assert (await first.delete("/api/v1/session")).status_code == 204
        replay = await studio.new_client().post(
            "/api/v1/generate",
            json={"prompt": "replayed"},
            headers={"Cookie": f"{COOKIE}={kept}", "X-CSRF-Token": csrf},
        )
        assert replay.status_code == 401, "a cookie copied before sign-out is worth nothing"
        assert (await second.get("/api/v1/tasks")).json()["items"] == [], "the other stays"
        old = second.cookies[COOKIE]
    async with make_studio(ENABLE_API_KEY_AUTH="true", API_KEY="a-new-key-77") as studio:
        stale = await studio.client.get("/api/v1/tasks", headers={"Cookie": f"{COOKIE}={old}"})
        assert stale.status_code == 401, "a new key ends the old key's sign-ins"


def assert_throttled(answer: httpx.Response) -> None:
    assert answer.status_code == 429, answer.text
    body = answer.json()
    assert body["error"] == "rate_limit_exceeded" and body["message"]
    assert answer.headers["retry-after"] == str(body["retry_after"]) and body["retry_after"] > 0


async def test_rotating_forwarding_headers_gives_no_more_guesses(make_studio: Any) -> None:
    async with make_studio(LOGIN_ATTEMPTS_PER_MINUTE=3, **ACCOUNTS) as studio:
        async with studio.state.sessionmaker() as session:
            await users.create_user(session, "alice", "alice-password")
            await session.commit()
        for n in range(3):
            spoofed = {"X-Real-IP": f"10.0.0.{n}", "X-Forwarded-For": f"10.0.1.{n}"}
            wrong = await studio.client.post(
                "/api/v1/session", json={"username": "alice", "password": "x"}, headers=spoofed
            )
            assert wrong.status_code == 401
        fresh = {"X-Real-IP": "10.9.9.9", "X-Forwarded-For": "10.9.9.9"}
        assert_throttled(
            await studio.client.post(
                "/api/v1/session",
                json={"username": "alice", "password": "alice-password"},
                headers=fresh,
            )
        )
        async with studio.state.sessionmaker() as session:
            clients = set(await session.scalars(select(AuditEntry.client)))
        assert clients == {"127.0.0.1"}, "the audit log names the peer, not what it claimed"


async def test_forwarded_addresses_count_from_trusted_proxies_only(make_studio: Any) -> None:
    async with make_studio(
        LOGIN_ATTEMPTS_PER_MINUTE=2, TRUSTED_PROXIES="127.0.0.0/8", **ACCOUNTS
    ) as studio:
        guess = {"username": "nobody", "password": "x"}
        for _ in range(2):
            answer = await studio.client.post(
                "/api/v1/session", json=guess, headers={"X-Forwarded-For": "203.0.113.7"}
            )
            assert answer.status_code == 401
        assert_throttled(
            await studio.client.post(
                "/api/v1/session", json=guess, headers={"X-Forwarded-For": "203.0.113.7"}
            )
        )
        behind = {"X-Forwarded-For": "203.0.113.7, 198.51.100.2"}  # one more hop, not trusted
        assert (await studio.client.post("/api/v1/session", json=guess, headers=behind)).is_error
        async with studio.state.sessionmaker() as session:
            clients = list(await session.scalars(select(AuditEntry.client)))
        assert set(clients) == {"203.0.113.7", "198.51.100.2"}


@pytest.mark.parametrize(
    ("settings", "wrong", "right"),
    [
        (
            {"BASIC_AUTH_USERNAME": "studio", "BASIC_AUTH_PASSWORD": "p@ss:word"},
            {"auth": ("studio", "guess")},
            {"auth": ("studio", "p@ss:word")},
        ),
        (
            {"ENABLE_API_KEY_AUTH": "true", "API_KEY": KEY},
            {"headers": {"X-API-Key": "guess"}},
            {"headers": {"X-API-Key": KEY}},
        ),
        (
            {"ENABLE_API_KEY_AUTH": "true", "API_KEY": KEY},
            {"headers": {"Authorization": "Bearer guess"}},
            {"headers": {"Authorization": f"Bearer {KEY}"}},
        ),
        (
            {"ENABLE_API_KEY_AUTH": "true", "API_KEY": KEY},
            {"headers": {"Cookie": f"{COOKIE}=guessed-token"}},
            {"headers": {"X-API-Key": KEY}},
        ),
        (
            ACCOUNTS,
            {"headers": {"Cookie": f"{COOKIE}=guessed-token"}},
            {"headers": {"Cookie": f"{COOKIE}=another-guess"}},
        ),
    ],
    ids=["basic", "api-key", "bearer", "key-cookie", "accounts-cookie"],
)
async def test_failed_credentials_of_every_kind_are_throttled(
    make_studio: Any, settings: dict[str, Any], wrong: dict[str, Any], right: dict[str, Any]
) -> None:
    async with make_studio(LOGIN_ATTEMPTS_PER_MINUTE=3, **settings) as studio:
        for _ in range(3):
            assert (await studio.client.get("/api/v1/tasks", **wrong)).status_code == 401
        assert_throttled(await studio.client.get("/api/v1/tasks", **wrong))
        assert_throttled(await studio.client.get("/api/v1/tasks", **right))
        assert (await studio.client.get("/api/v1/health")).status_code == 200


async def test_refused_requests_count_against_the_request_budget(make_studio: Any) -> None:
    async with make_studio(
        RATE_LIMIT_PER_MINUTE=3,
        LOGIN_ATTEMPTS_PER_MINUTE=100,
        ENABLE_API_KEY_AUTH="true",
        API_KEY=KEY,
    ) as studio:
        for _ in range(3):
            assert (await studio.client.get("/api/v1/tasks")).status_code == 401
        assert_throttled(await studio.client.get("/api/v1/tasks", headers={"X-API-Key": KEY}))


async def test_other_sites_pages_cannot_make_changes_or_read(make_studio: Any) -> None:
    async with make_studio() as studio:
        client = studio.client
        evil = {"Origin": "https://evil.example"}
        forged = await client.post("/api/v1/generate", json={"prompt": "from evil"}, headers=evil)
        assert forged.status_code == 403
        assert forged.json() == {
            "error": "forbidden",
            "message": "Changes from another site's page are refused (see ALLOWED_ORIGINS)",
        }
        for method in ("DELETE", "PATCH", "PUT"):
            refused = await client.request(method, "/api/v1/task/x", headers=evil)
            assert refused.status_code == 403, method
        read = await client.get("/api/v1/history", headers=evil)
        assert read.status_code == 200 and "access-control-allow-origin" not in read.headers
        preflight = await client.options(
            "/api/v1/generate", headers={**evil, "Access-Control-Request-Method": "POST"}
        )
        assert "access-control-allow-origin" not in preflight.headers
        assert (await client.get("/api/v1/tasks")).json()["items"] == []
        own = await client.post(
            "/api/v1/generate", json={"prompt": "mine"}, headers={"Origin": "http://test"}
        )
        assert own.status_code == 201, "the studio's own page"
    async with make_studio(ALLOWED_ORIGINS="https://tools.example") as studio:
        tools = {"Origin": "https://tools.example"}
        allowed = await studio.client.post("/api/v1/generate", json={"prompt": "x"}, headers=tools)
        assert allowed.status_code == 201
        assert allowed.headers["access-control-allow-origin"] == "https://tools.example"


async def test_only_admins_drive_the_emulator_and_not_without_limit(make_studio: Any) -> None:
    # every client here is 127.0.0.1: two sign-ins, three refusals, one change, then 429
    async with make_studio(RATE_LIMIT_PER_MINUTE=6, **ACCOUNTS) as studio:
        async with studio.state.sessionmaker() as session:
            await users.create_user(session, "alice", "alice-password")
            await users.create_user(session, "boss", "boss-password", is_admin=True)
            await session.commit()
        alice, boss = studio.new_client(), studio.new_client()
        await studio.sign_in(alice, username="alice", password="alice-password")
        await studio.sign_in(boss, username="boss", password="boss-password")
        for path, body in (
            ("/emulator/_emulator/faults", {"faults": ["server_error"]}),
            ("/emulator/_emulator/latency", {"latency_ms": 60000}),
            ("/emulator/_emulator/reset", {}),
        ):
            refused = await alice.post(path, json=body)
            assert refused.status_code == 403 and refused.json()["error"] == "forbidden", path
        assert studio.emulator.faults == [] and studio.emulator.latency_ms == 0
        faults = await boss.post("/emulator/_emulator/faults", json={"faults": ["server_error"]})
        assert faults.status_code == 200 and studio.emulator.faults == ["server_error"]
        assert_throttled(await boss.post("/emulator/_emulator/reset", json={}))
