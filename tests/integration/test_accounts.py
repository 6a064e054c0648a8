"""User accounts: sign-in with argon2 passwords, cookie sessions with CSRF tokens, each user
seeing only their own work, per-user daily quotas, the admin API and the `volcimage user` CLI."""

from __future__ import annotations

import asyncio
import json
import subprocess
import threading
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from tests.support import Studio, process_env, serving, upload, volcimage, wait_for_task
from volcimage.app import create_app
from volcimage.audit.models import AuditEntry
from volcimage.auth import sessions
from volcimage.auth.models import User, UserSession
from volcimage.core.config import load_settings
from volcimage.events.bus import EventBus
from volcimage.events.relay import start_relay
from volcimage.tasks import reads
from volcimage.users import service as users

ACCOUNTS = {"ENABLE_USER_ACCOUNTS": "true"}


async def add_user(
    studio: Any, name: str, *, admin: bool = False, quota: int | None = None
) -> None:
    async with studio.state.sessionmaker() as session:
        await users.create_user(
            session, name, f"{name}-password", is_admin=admin, daily_image_quota=quota
        )
        await session.commit()


async def signed_in(studio: Any, name: str) -> httpx.AsyncClient:
    client = studio.new_client()
    await studio.sign_in(client, username=name, password=f"{name}-password")
    return client


async def test_nothing_but_the_page_and_sign_in_without_a_session(make_studio: Any) -> None:
    async with make_studio(**ACCOUNTS) as studio:
        client = studio.client
        assert (await client.get("/")).status_code == 200
        info = (await client.get("/api/v1/session")).json()
        assert info == {"mode": "accounts", "user": None, "signed_in": False, "csrf_token": None}
        for path in ("/api/v1/tasks", "/api/v1/history", "/api/v1/system/info", "/metrics"):
            refused = await client.get(path)
            assert refused.status_code == 401, path
            assert refused.json() == {"error": "unauthorized", "message": "Sign in first"}
        forged = await client.get("/api/v1/tasks", headers={"Cookie": "volcimage_session=forged"})
        assert forged.status_code == 401


async def test_sign_in_sets_a_session_cookie_holding_no_password(make_studio: Any) -> None:
    async with make_studio(**ACCOUNTS) as studio:
        await add_user(studio, "alice")
        client = studio.client
        wrong = await client.post(
            "/api/v1/session", json={"username": "alice", "password": "not-hers"}
        )
        assert wrong.status_code == 401
        assert wrong.json()["message"] == "The username or password is not valid"
        unknown = await client.post("/api/v1/session", json={"username": "eve", "password": "x"})
        assert unknown.status_code == 401 and unknown.json() == wrong.json()
        missing = await client.post("/api/v1/session", json={"api_key": "something"})
        assert missing.status_code == 400
        login = await client.post(
            "/api/v1/session", json={"username": " Alice ", "password": "alice-password"}
        )
        assert login.status_code == 200
        body = login.json()
        assert body["user"] == {"username": "alice", "is_admin": False} and body["signed_in"]
        cookie = login.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Max-Age=1209600" in cookie
        assert "alice-password" not in cookie
        token = client.cookies["volcimage_session"]
        async with studio.state.sessionmaker() as session:
            stored = (await session.scalars(select(UserSession))).one()
            user = (await session.scalars(select(User))).one()
        assert stored.token_hash == sessions.token_hash(token) and token not in stored.token_hash
        assert user.password_hash.startswith("$argon2id$") and user.last_login_at is not None
        assert (await client.get("/api/v1/tasks")).status_code == 200
        assert (await client.get("/api/v1/session")).json()["csrf_token"] == body["csrf_token"]


async def test_changes_made_with_the_cookie_need_the_csrf_token(make_studio: Any) -> None:
    async with make_studio(**ACCOUNTS) as studio:
        await add_user(studio, "alice")
        client = await signed_in(studio, "alice")
        csrf = client.headers.pop("X-CSRF-Token")
        for method, path in (
            ("POST", "/api/v1/generate"),
            ("DELETE", "/api/v1/task/x"),
            ("PATCH", "/api/v1/images/x"),
            ("DELETE", "/api/v1/session"),
        ):
            refused = await client.request(method, path, json={"prompt": "forged"})
            assert refused.status_code == 403, path
            assert refused.json()["error"] == "csrf_failed"
        wrong = await client.post(
            "/api/v1/generate", json={"prompt": "x"}, headers={"X-CSRF-Token": csrf[:-1] + "x"}
        )
        assert wrong.status_code == 403
        ok = await client.post(
            "/api/v1/generate", json={"prompt": "mine"}, headers={"X-CSRF-Token": csrf}
        )
        assert ok.status_code == 201
        logout = await client.delete("/api/v1/session", headers={"X-CSRF-Token": csrf})
        assert logout.status_code == 204
        assert (await client.get("/api/v1/tasks")).status_code == 401
        async with studio.state.sessionmaker() as session:
            assert (await session.scalars(select(UserSession))).all() == []


async def test_each_user_sees_only_their_own_work_and_the_admin_sees_all(
    make_studio: Any,
) -> None:
    async with make_studio(**ACCOUNTS) as studio:
        for name in ("alice", "bob"):
            await add_user(studio, name)
        await add_user(studio, "boss", admin=True)
        alice, bob, boss = [await signed_in(studio, n) for n in ("alice", "bob", "boss")]
        created = await alice.post("/api/v1/generate", json={"prompt": "alice's fox"})
        theirs = await wait_for_task(alice, created.json()["task_id"])
        image_id = theirs["images"][0]["image_id"]
        await alice.patch(f"/api/v1/images/{image_id}", json={"tags": ["foxes"]})
        reference = await upload(alice, 512, 512)
        await bob.post("/api/v1/generate", json={"prompt": "bob's owl"})

        async def prompts(client: httpx.AsyncClient) -> set[str]:
            items = (await client.get("/api/v1/history")).json()["items"]
            listed = (await client.get("/api/v1/tasks")).json()["items"]
            assert {t["task_id"] for t in items} == {t["task_id"] for t in listed}
            return {t["prompt"] for t in items}

        assert await prompts(alice) == {"alice's fox"}
        assert await prompts(bob) == {"bob's owl"}
        assert await prompts(boss) == {"alice's fox", "bob's owl"}
        everyone = (await boss.get("/api/v1/history")).json()["items"]
        assert {t["prompt"]: t["owner"] for t in everyone} == {
            "alice's fox": "alice",
            "bob's owl": "bob",
        }
        assert (await bob.get("/api/v1/tags")).json() == []
        assert (await boss.get("/api/v1/tags")).json() == [{"name": "foxes", "count": 1}]
        task_id = theirs["task_id"]
        for method, path in (
            ("GET", f"/api/v1/task/{task_id}"),
            ("POST", f"/api/v1/task/{task_id}/retry"),
            ("DELETE", f"/api/v1/task/{task_id}"),
            ("DELETE", f"/api/v1/history/{task_id}"),
            ("GET", f"/api/v1/images/{image_id}"),
            ("GET", f"/api/v1/images/{image_id}/thumbnail"),
            ("GET", f"/api/v1/archive?ids={image_id}"),
            ("GET", f"/api/v1/uploads/{reference}"),
            ("GET", f"/api/v1/uploads/{reference}/thumbnail"),
        ):
            assert (await bob.request(method, path)).status_code == 404, path
        patched = await bob.patch(f"/api/v1/images/{image_id}", json={"favorite": True})
        assert patched.status_code == 404
        for ref in (reference, image_id):
            borrowed = await bob.post(
                "/api/v1/generate",
                json={"prompt": "x", "model": "seededit-3.0", "reference_images": [ref]},
            )
            assert borrowed.status_code == 400 and borrowed.json()["details"]["id"] == ref
        assert (await boss.get(f"/api/v1/images/{image_id}")).status_code == 200
        assert (await alice.get(f"/api/v1/task/{task_id}")).json()["images"][0]["favorite"] is False
        own_audit = (await bob.get("/api/v1/audit")).json()
        assert {e["actor"] for e in own_audit} == {"bob"}
        assert {e["actor"] for e in (await boss.get("/api/v1/audit")).json()} >= {"alice", "bob"}


async def test_each_user_has_a_daily_quota_inside_the_global_budget(make_studio: Any) -> None:
    async with make_studio(USER_DAILY_IMAGE_QUOTA=2, DAILY_IMAGE_QUOTA=5, **ACCOUNTS) as studio:
        await add_user(studio, "alice")
        await add_user(studio, "bob", quota=4)
        alice, bob = await signed_in(studio, "alice"), await signed_in(studio, "bob")
        assert (
            await alice.post("/api/v1/generate", json={"prompt": "a", "num_images": 2})
        ).is_success
        refused = await alice.post("/api/v1/generate", json={"prompt": "one more"})
        assert refused.status_code == 429 and refused.json()["error"] == "quota_exceeded"
        assert "Your daily image quota is used: 2 of 2" in refused.json()["message"]
        assert int(refused.headers["retry-after"]) > 0
        info = (await alice.get("/api/v1/system/info")).json()
        assert info["user_quota"] == {"used": 2, "limit": 2}
        assert info["quota"] == {"used": 2, "limit": 5}
        assert (
            await bob.post("/api/v1/generate", json={"prompt": "b", "num_images": 3})
        ).is_success
        over_budget = await bob.post("/api/v1/generate", json={"prompt": "b"})
        assert over_budget.status_code == 429
        assert "Today's image budget is used: 5 of 5" in over_budget.json()["message"]


async def test_admins_manage_users_and_users_their_own_password(make_studio: Any) -> None:
    async with make_studio(**ACCOUNTS) as studio:
        await add_user(studio, "boss", admin=True)
        await add_user(studio, "alice")
        boss, alice = await signed_in(studio, "boss"), await signed_in(studio, "alice")
        assert (await alice.get("/api/v1/users")).status_code == 403
        refused = await alice.post("/api/v1/users", json={"username": "x", "password": "12345678"})
        assert refused.status_code == 403 and refused.json()["error"] == "forbidden"
        created = await boss.post(
            "/api/v1/users",
            json={"username": "Carol", "password": "carol-password", "daily_image_quota": 7},
        )
        assert created.status_code == 201
        assert created.json()["username"] == "carol" and created.json()["daily_image_quota"] == 7
        taken = await boss.post("/api/v1/users", json={"username": "carol", "password": "x" * 8})
        assert taken.status_code == 409
        for bad in (
            {"username": "no spaces", "password": "x" * 8},
            {"username": "api-key", "password": "x" * 8},
            {"username": "dave", "password": "short"},
        ):
            assert (await boss.post("/api/v1/users", json=bad)).status_code == 400, bad
        listed = (await boss.get("/api/v1/users")).json()
        assert [u["username"] for u in listed] == ["alice", "boss", "carol"]
        assert "password_hash" not in json.dumps(listed)
        carol = await signed_in(studio, "carol")
        disabled = await boss.patch("/api/v1/users/carol", json={"disabled": True})
        assert disabled.json()["disabled"] is True
        assert (await carol.get("/api/v1/tasks")).status_code == 401, "signed out at once"
        again = await studio.new_client().post(
            "/api/v1/session", json={"username": "carol", "password": "carol-password"}
        )
        assert again.status_code == 401
        itself = await boss.patch("/api/v1/users/boss", json={"is_admin": False})
        assert itself.status_code == 400
        changed = await alice.put(
            "/api/v1/session/password",
            json={"current_password": "alice-password", "new_password": "alice-new-secret"},
        )
        assert changed.status_code == 204
        assert (await alice.get("/api/v1/tasks")).status_code == 200, "this sign-in stays"
        wrong = await alice.put(
            "/api/v1/session/password",
            json={"current_password": "guess", "new_password": "whatever-else"},
        )
        assert wrong.status_code == 401
        fresh = studio.new_client()
        await studio.sign_in(fresh, username="alice", password="alice-new-secret")
        async with studio.state.sessionmaker() as session:
            entries = (await session.scalars(select(AuditEntry))).all()
        text = json.dumps([e.detail for e in entries]) + " ".join(str(e.target) for e in entries)
        assert "carol-password" not in text and "alice-new-secret" not in text
        actions = [e.action for e in entries]
        assert {"user.create", "user.update", "user.password", "login", "login.failed"} <= set(
            actions
        )


async def test_failed_sign_ins_are_slowed_per_client(make_studio: Any) -> None:
    async with make_studio(LOGIN_ATTEMPTS_PER_MINUTE=3, **ACCOUNTS) as studio:
        await add_user(studio, "alice")
        client = studio.client
        for _ in range(3):
            wrong = await client.post(
                "/api/v1/session", json={"username": "alice", "password": "x"}
            )
            assert wrong.status_code == 401
        limited = await client.post(
            "/api/v1/session", json={"username": "alice", "password": "alice-password"}
        )
        assert limited.status_code == 429 and limited.headers["retry-after"] == "60"


async def test_the_api_key_still_works_beside_accounts_as_an_admin(make_studio: Any) -> None:
    async with make_studio(ENABLE_API_KEY_AUTH="true", API_KEY="script-key", **ACCOUNTS) as studio:
        await add_user(studio, "alice")
        alice = await signed_in(studio, "alice")
        await alice.post("/api/v1/generate", json={"prompt": "hers"})
        script = {"X-API-Key": "script-key"}
        items = (await studio.client.get("/api/v1/tasks", headers=script)).json()["items"]
        assert [t["prompt"] for t in items] == ["hers"]
        key_login = await studio.client.post("/api/v1/session", json={"api_key": "script-key"})
        assert key_login.status_code == 400, "the page signs in with a username in accounts mode"


def test_cli_creates_the_admin_and_events_reach_only_their_owner(
    tmp_path: Path, database_url: str
) -> None:
    settings = {"ENABLE_USER_ACCOUNTS": "true", "TASK_LEASE_SECONDS": 3}
    env = process_env(tmp_path, database_url, **settings)

    def cli(*args: str, password: str = "") -> subprocess.CompletedProcess[str]:
        return volcimage(env, tmp_path, "user", *args, stdin=password)

    made = cli("create", "boss", "--admin", "--password-stdin", password="boss-password\n")
    assert made.returncode == 0, made.stderr
    assert "user boss saved (admin)" in made.stdout
    assert "boss-password" not in made.stdout + made.stderr
    again = cli("create", "boss", "--password-stdin", password="boss-password\n")
    assert again.returncode == 1 and "already exists" in again.stderr
    assert cli("create", "alice", "--password-stdin", password="alice-password\n").returncode == 0
    assert cli("set", "alice", "--quota", "3").returncode == 0
    assert "alice\tuser\tactive\tquota=3" in cli("list").stdout

    with serving(tmp_path, database_url, **settings) as server:
        clients = {}
        for name in ("boss", "alice"):
            client = httpx.Client(base_url=server.url, timeout=30)
            login = client.post(
                "/api/v1/session", json={"username": name, "password": f"{name}-password"}
            )
            assert login.status_code == 200, login.text
            client.headers["X-CSRF-Token"] = login.json()["csrf_token"]
            clients[name] = client
        seen: list[dict[str, Any]] = []
        ready = threading.Event()
        done = threading.Event()

        def follow() -> None:
            with clients["alice"].stream("GET", "/api/v1/events", timeout=60) as stream:
                for line in stream.iter_lines():
                    if line.startswith("event: ready"):
                        ready.set()
                    if line.startswith("data: ") and line != "data: {}":
                        seen.append(json.loads(line[6:]))
                        task = seen[-1].get("task", {})
                        if task.get("prompt") == "hers" and task.get("status") == "completed":
                            done.set()
                            return

        reader = threading.Thread(target=follow, daemon=True)
        reader.start()
        assert ready.wait(30)
        boss_task = clients["boss"].post("/api/v1/generate", json={"prompt": "the boss's"}).json()
        clients["alice"].post("/api/v1/generate", json={"prompt": "hers"})
        assert done.wait(60), seen
        assert {e["task"]["prompt"] for e in seen if "prompt" in e["task"]} == {"hers"}
        assert all(e["task"]["task_id"] != boss_task["task_id"] for e in seen)
        assert all("owner" not in e for e in seen)

        socket_url = server.url.replace("http://", "ws://") + "/api/v1/generate/stream"
        cookie = {"Cookie": f"volcimage_session={clients['alice'].cookies['volcimage_session']}"}
        with pytest.raises(InvalidStatus, match="403"):
            connect(socket_url, open_timeout=10).close()
        foreign = {**cookie, "Origin": "https://evil.example"}
        with pytest.raises(InvalidStatus, match="403"):
            connect(socket_url, additional_headers=foreign, open_timeout=10).close()
        own = {**cookie, "Origin": server.url.replace("127.0.0.1", "localhost")}
        with pytest.raises(InvalidStatus, match="403"):
            connect(socket_url, additional_headers=own, open_timeout=10).close()
        own["Origin"] = server.url
        with connect(socket_url, additional_headers=own, open_timeout=10) as socket:
            assert json.loads(socket.recv(timeout=10)) == {"type": "ready"}
            clients["boss"].post("/api/v1/generate", json={"prompt": "the boss's second"})
            socket.send(json.dumps({"type": "generate", "prompt": "hers, by socket"}))
            # the reply and the task's own events come from two tasks: any order is right
            messages: list[dict[str, Any]] = []
            replies: list[dict[str, Any]] = []
            finished = False
            while not (replies and finished):
                message = json.loads(socket.recv(timeout=30))
                (replies if message["type"] == "task.queued" else messages).append(message)
                finished = finished or message.get("task", {}).get("status") == "completed"
        prompts = {m["task"].get("prompt") for m in messages if "task" in m}
        assert prompts == {"hers, by socket"}, messages
        assert len(replies) == 1, replies
        assert {m["task"]["task_id"] for m in messages} == {replies[0]["task_id"]}
        mine = clients["alice"].get("/api/v1/tasks").json()["items"]
        assert {t["prompt"] for t in mine} == {"hers", "hers, by socket"}


async def test_events_relayed_between_processes_keep_their_owner(
    tmp_path: Path, pg_database: str
) -> None:
    """On PostgreSQL a worker's events reach the API processes through NOTIFY; each must still
    say whose task it is, or users would see no progress at all."""
    env = process_env(tmp_path, pg_database, ENABLE_USER_ACCOUNTS="true", TASK_LEASE_SECONDS=3)
    app = create_app(load_settings(_env_file=None, **env))
    state = app.state.volcimage
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        client = httpx.AsyncClient(transport=transport, base_url="http://test")
        studio = Studio(app, client, state.settings)
        await add_user(studio, "alice")
        alice = await signed_in(studio, "alice")
        other_bus = EventBus()  # another process's bus
        relay = await start_relay(pg_database, other_bus, state.sessionmaker, reads.event_of_note)
        assert relay is not None
        try:
            async with other_bus.subscribe() as events:
                created = await alice.post("/api/v1/generate", json={"prompt": "relayed"})
                task = await wait_for_task(alice, created.json()["task_id"])
                image_id = task["images"][0]["image_id"]
                await alice.patch(f"/api/v1/images/{image_id}", json={"favorite": True})
                await alice.delete(f"/api/v1/task/{task['task_id']}")
                kinds: dict[str, Any] = {}
                while "task.deleted" not in kinds:
                    event = await asyncio.wait_for(events.get(), 10)
                    kinds.setdefault(event["type"], event)
        finally:
            await relay.stop()
            await studio.client.aclose()
        async with state.sessionmaker() as session:
            owner = await session.scalar(select(User.id).where(User.username == "alice"))
        assert {"task.created", "task.updated", "image.stored", "image.updated"} <= set(kinds)
        assert {e["owner"] for e in kinds.values()} == {owner}
