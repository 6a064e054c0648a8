"""Admission of paid work (quota.reserve): the queue cap, the daily budget and per-user quotas
hold under concurrent requests and for retries, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import httpx

from tests.integration.test_accounts import ACCOUNTS, add_user, signed_in
from tests.support import wait_for_task

API = "/api/v1"
ONE = {"prompt": "a lighthouse", "model": "seedream-3.0", "num_images": 1}
# calls that do not end while the test runs: tasks stay in the queue, admitted or not
STUCK = {"EMULATOR_LATENCY_MS": 600_000}


async def _concurrently(client: httpx.AsyncClient, method: str, paths: list[str]) -> Counter[int]:
    body = ONE if method == "POST" and paths[0].endswith("/generate") else None
    answers = await asyncio.gather(
        *(client.request(method, f"{API}{path}", json=body) for path in paths)
    )
    for answer in answers:
        if answer.status_code == 429:
            assert answer.json()["error"] in ("quota_exceeded", "rate_limit_exceeded")
            assert int(answer.headers["Retry-After"]) >= 1
    return Counter(a.status_code for a in answers)


async def test_concurrent_tasks_never_pass_the_daily_budget(make_studio: Any) -> None:
    async with make_studio(DAILY_IMAGE_QUOTA=5, **STUCK) as studio:
        codes = await _concurrently(studio.client, "POST", ["/generate"] * 30)
        assert codes == {201: 5, 429: 25}
        info = (await studio.client.get(f"{API}/system/info")).json()
        assert info["quota"] == {"used": 5, "limit": 5}


async def test_concurrent_tasks_never_pass_the_queue_cap(make_studio: Any) -> None:
    async with make_studio(MAX_PENDING_TASKS=5, **STUCK) as studio:
        codes = await _concurrently(studio.client, "POST", ["/generate"] * 40)
        assert codes == {201: 5, 429: 35}
        listed = (await studio.client.get(f"{API}/tasks")).json()["items"]
        assert len(listed) == 5


async def test_concurrent_tasks_never_pass_a_users_quota(make_studio: Any) -> None:
    async with make_studio(**ACCOUNTS, USER_DAILY_IMAGE_QUOTA=2, **STUCK) as studio:
        await add_user(studio, "alice")
        alice = await signed_in(studio, "alice")
        codes = await _concurrently(alice, "POST", ["/generate"] * 10)
        assert codes == {201: 2, 429: 8}
        info = (await alice.get(f"{API}/system/info")).json()
        assert info["user_quota"] == {"used": 2, "limit": 2}


async def test_cancel_then_retry_passes_the_same_budget_as_a_new_task(make_studio: Any) -> None:
    async with make_studio(**ACCOUNTS, USER_DAILY_IMAGE_QUOTA=2, **STUCK) as studio:
        await add_user(studio, "alice")
        alice = await signed_in(studio, "alice")
        cancelled = []
        for _ in range(10):
            created = await alice.post(f"{API}/generate", json=ONE)
            assert created.status_code == 201, created.text
            task_id = created.json()["task_id"]
            assert (await alice.post(f"{API}/task/{task_id}/cancel")).status_code == 200
            assert (await wait_for_task(alice, task_id))["status"] == "cancelled"
            cancelled.append(task_id)
        # a cancelled task without images costs nothing, so ten could be made in turn; queued
        # again they ask for ten images of a quota of two
        codes = await _concurrently(alice, "POST", [f"/task/{t}/retry" for t in cancelled])
        assert codes == {200: 2, 429: 8}
        info = (await alice.get(f"{API}/system/info")).json()
        assert info["user_quota"] == {"used": 2, "limit": 2}


async def test_a_task_retried_twice_at_once_is_queued_once(make_studio: Any) -> None:
    async with make_studio(**STUCK) as studio:
        task_id = (await studio.generate())["task_id"]
        assert (await studio.client.post(f"{API}/task/{task_id}/cancel")).status_code == 200
        assert (await wait_for_task(studio.client, task_id))["status"] == "cancelled"
        codes = await _concurrently(studio.client, "POST", [f"/task/{task_id}/retry"] * 5)
        assert codes == {200: 1, 409: 4}


async def test_a_retry_is_refused_when_the_queue_is_full(make_studio: Any) -> None:
    async with make_studio(MAX_PENDING_TASKS=1, **STUCK) as studio:
        first = (await studio.generate())["task_id"]
        assert (await studio.client.post(f"{API}/task/{first}/cancel")).status_code == 200
        assert (await wait_for_task(studio.client, first))["status"] == "cancelled"
        await studio.generate()
        refused = await studio.client.post(f"{API}/task/{first}/retry")
        assert refused.status_code == 429
        assert refused.json()["error"] == "rate_limit_exceeded"
        assert (await studio.client.get(f"{API}/task/{first}")).json()["status"] == "cancelled"
