"""What the page is told: each provider's real state, each image's own seed, and how long a task
takes here (learned from this deployment's runs, not a constant)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import httpx
import pytest

from tests.support import generate, serve_app, wait_for_task
from volcimage.core.config import load_settings
from volcimage.core.db import utcnow
from volcimage.emulator.app import create_emulator_app
from volcimage.images.processing import read_metadata
from volcimage.tasks.models import Task, TaskStatus

API = "/api/v1"
ARK_KEY = "ark-key-never-shown-0123456789"
AK, SK = "AKLT-never-shown", "secret-never-shown"

# (VOLC_PROVIDER_MODE, Ark key set, key pair set) -> (ark, visual, mode, api_connected)
COMBINATIONS = [
    ("auto", False, False, "demo", "demo", "demo", True),
    ("auto", True, False, "real", "demo", "real", True),
    ("auto", False, True, "demo", "real", "real", True),  # Jimeng/General are paid calls
    ("auto", True, True, "real", "real", "real", True),
    ("real", False, False, "not_configured", "not_configured", "real", False),
    ("real", True, False, "real", "not_configured", "real", False),
    ("real", False, True, "not_configured", "real", "real", False),
    ("real", True, True, "real", "real", "real", True),
    ("demo", False, False, "demo", "demo", "demo", True),
    ("demo", True, False, "demo", "demo", "demo", True),
    ("demo", False, True, "demo", "demo", "demo", True),
    ("demo", True, True, "demo", "demo", "demo", True),
]


@pytest.fixture(scope="module")
def upstream() -> Iterator[str]:
    """The emulator as a server taking these keys: "real" calls go there, not to VolcEngine."""
    keys = load_settings(_env_file=None, VOLC_ACCESS_KEY=AK, VOLC_SECRET_KEY=SK)
    with serve_app(create_emulator_app(keys)) as url:
        yield url


@pytest.mark.parametrize(
    ("mode", "ark", "pair", "ark_state", "visual_state", "seed_mode", "ok"), COMBINATIONS
)
@pytest.mark.one_database  # no query is involved
async def test_system_info_reports_each_provider_as_its_calls_go(
    make_studio: Any,
    upstream: str,
    mode: str,
    ark: bool,
    pair: bool,
    ark_state: str,
    visual_state: str,
    seed_mode: str,
    ok: bool,
) -> None:
    keys = {
        "ARK_API_KEY": ARK_KEY if ark else "",
        "VOLC_ACCESS_KEY": AK if pair else "",
        "VOLC_SECRET_KEY": SK if pair else "",
        "ARK_BASE_URL": f"{upstream}/api/v3",
        "VOLC_BASE_URL": f"{upstream}/visual",
    }
    async with make_studio(VOLC_PROVIDER_MODE=mode, **keys) as studio:
        answer = await studio.client.get(f"{API}/system/info")
        info = answer.json()
    providers = info["providers"]
    assert providers["ark"]["state"] == ark_state
    assert providers["visual"]["state"] == visual_state
    assert (info["mode"], info["api_connected"]) == (seed_mode, ok)
    assert "seedream-3.0" in providers["ark"]["models"]
    assert "jimeng-3.1" in providers["visual"]["models"]
    assert providers["ark"]["credentials"] == ["ARK_API_KEY"]
    assert providers["visual"]["credentials"] == ["VOLC_ACCESS_KEY", "VOLC_SECRET_KEY"]
    for secret in (ARK_KEY, AK, SK):
        assert secret not in answer.text
    for name, state in (("ark", ark_state), ("visual", visual_state)):
        assert providers[name]["connected"] is (state != "not_configured"), providers[name]


@pytest.mark.one_database
async def test_a_refused_key_shows_as_not_connected_and_the_probe_is_kept(
    make_studio: Any, upstream: str
) -> None:
    """The probe behind `api_connected` is the doctor's: it names the setting refused, pays for
    nothing, and is not made again on every page load."""
    stats = f"{upstream}/_emulator/stats"
    env = {
        "VOLC_PROVIDER_MODE": "real",
        "ARK_API_KEY": "invalid-key",  # the emulator refuses this one
        "VOLC_ACCESS_KEY": AK,
        "VOLC_SECRET_KEY": SK,
        "ARK_BASE_URL": f"{upstream}/api/v3",
        "VOLC_BASE_URL": f"{upstream}/visual",
    }
    async with make_studio(**env) as studio, httpx.AsyncClient() as direct:
        before = (await direct.get(stats)).json()
        info = (await studio.client.get(f"{API}/system/info")).json()
        again = (await studio.client.get(f"{API}/system/info")).json()
        after = (await direct.get(stats)).json()
    assert info["api_connected"] is False and again == info
    assert info["providers"]["ark"]["connected"] is False
    assert "ARK_API_KEY was refused" in info["providers"]["ark"]["detail"]
    assert info["providers"]["visual"]["connected"] is True
    assert after["images_generated"] == before["images_generated"]
    # one probe for both answers: the Ark probe reached the emulator's generations once at most
    assert after["generation_calls"] - before["generation_calls"] <= 1


@pytest.mark.one_database  # the seeds ride in rows every task writes
async def test_each_image_carries_the_seed_it_was_drawn_with(app_client: Any) -> None:
    created = await generate(app_client, num_images=3, seed=777)
    task = await wait_for_task(app_client, created["task_id"])
    assert [image["seed"] for image in task["images"]] == [777, 778, 779]
    for image in task["images"]:
        original = await app_client.get(image["url"])
        assert read_metadata(original.content)["seed"] == image["seed"], "file and API agree"
    history = (await app_client.get(f"{API}/history")).json()["items"][0]
    assert [image["seed"] for image in history["images"]] == [777, 778, 779]
    second = task["images"][1]
    changed = await app_client.patch(f"{API}/images/{second['image_id']}", json={"favorite": True})
    assert changed.json()["seed"] == 778


@pytest.mark.parametrize(
    ("body", "why"),
    [
        ({"model": "seedream-4.0", "num_images": 3, "group": True}, "a group takes no seed"),
        ({"model": "seedream-4.0", "num_images": 2}, "Seedream 4.x takes no seed"),
        ({"model": "jimeng-3.1", "seed": -1}, "a random seed cannot be given again"),
        ({"num_images": 2}, "no seed asked: the upstream chose"),
    ],
)
@pytest.mark.one_database  # the seeds ride in rows every task writes
async def test_an_image_without_a_seed_to_give_again_says_null(
    app_client: Any, body: dict[str, Any], why: str
) -> None:
    task = await wait_for_task(app_client, (await generate(app_client, **body))["task_id"])
    assert task["status"] == "completed", task
    assert [image["seed"] for image in task["images"]] == [None] * task["num_images"], why


async def _add_runs(studio: Any, model: str, size: int, seconds: list[float]) -> None:
    """Completed tasks of `model` that took these many seconds, as the runner leaves them."""
    state = studio.app.state.volcimage
    now = utcnow()
    async with state.sessionmaker() as session:
        for took in seconds:
            session.add(
                _task(model, size, TaskStatus.COMPLETED, now - timedelta(seconds=took), now)
            )
        await session.commit()


def _task(model: str, size: int, status: str, started: Any, completed: Any) -> Task:
    return Task(
        task_id=str(uuid.uuid4()),
        status=status,
        prompt="learned from",
        model=model,
        width=size,
        height=size,
        num_images=1,
        params={"group": False},
        attempts=1 if started else 0,
        progress=100 if completed else 0,
        started_at=started,
        completed_at=completed,
        run_after=utcnow() + timedelta(days=1),  # a queued one stays queued: no runner takes it
    )


async def test_the_estimate_is_learned_from_recent_runs_of_the_model_and_size(
    make_studio: Any,
) -> None:
    async with make_studio() as studio:
        client = studio.client
        # a median: one slow call (40 s) or this test's own quick runs do not move it
        await _add_runs(studio, "seedream-3.0", 1024, [20, 20, 20, 40, 40])
        await _add_runs(studio, "seedream-3.0", 2048, [60, 60, 60])
        small = await generate(client, width=1024, height=1024)
        large = await generate(client, width=2048, height=2048)
        assert small["estimated_time"] == 20
        assert large["estimated_time"] == 60
        size_never_run = await generate(client, model="seedream-3.0", width=1280, height=720)
        assert size_never_run["estimated_time"] == 20, "1280x720 is in 1024x1024's class"
        never_run = await generate(client, model="jimeng-3.1", num_images=2)
        assert never_run["estimated_time"] == 16, "a model never run here: 8 s an image"

        state = studio.app.state.volcimage
        async with state.sessionmaker() as session:
            queued = _task("seedream-3.0", 2048, TaskStatus.PENDING, None, None)
            session.add(queued)
            await session.commit()
        shown = (await client.get(f"{API}/task/{queued.task_id}")).json()
        assert shown["status"] == "pending" and shown["estimated_seconds"] == 60
        listed = (await client.get(f"{API}/tasks", params={"status": "pending"})).json()
        assert {t["task_id"]: t["estimated_seconds"] for t in listed["items"]}[queued.task_id] == 60
        done = await wait_for_task(client, small["task_id"])
        assert done["estimated_seconds"] is None, "a finished task needs no estimate"


async def test_a_queued_task_waits_for_the_rounds_ahead_of_it(make_studio: Any) -> None:
    async with make_studio(MAX_CONCURRENT_TASKS=1) as studio:
        await _add_runs(studio, "seedream-3.0", 1024, [10, 10, 10])
        state = studio.app.state.volcimage
        async with state.sessionmaker() as session:
            for _ in range(2):  # queued and held: two rounds ahead at one task at a time
                session.add(_task("seedream-3.0", 1024, TaskStatus.PENDING, None, None))
            await session.commit()
        created = await generate(studio.client, width=1024, height=1024)
        assert created["estimated_time"] == 30
