"""The upstream's limits as a claim applies them: which queued tasks fit, and a call's time."""

from __future__ import annotations

from collections import Counter
from typing import Any

from volcimage.catalog.models import load_catalog
from volcimage.core.config import load_settings
from volcimage.queue.limits import Limits, Load, Usage, call_timeout, load_of, slots_of

ARK, ARK2, VISUAL = "seedream-3.0", "seedream-4.0", "jimeng-3.1"


def limits(**settings: Any) -> Limits:
    return Limits(load_settings(_env_file=None, **settings), load_catalog())


def task(pk: int, model: str, images: int = 1, group: bool = False) -> Load:
    return Load(pk, model, images, slots_of(images, group))


def test_the_documented_defaults_hold_visual_to_one_call_and_each_ark_model_to_500() -> None:
    default = limits()
    assert default.concurrency("visual") == 1 and default.concurrency("ark") == 0
    assert default.images_per_minute(ARK) == 500 == default.images_per_minute(ARK2)
    assert default.images_per_minute(VISUAL) == 0  # the Visual API counts calls, not images


def test_a_model_setting_overrides_its_upstreams_default() -> None:
    given = limits(MODEL_IMAGES_PER_MINUTE=f"{ARK}=20,{ARK2}=0,{VISUAL}=6")
    assert given.images_per_minute(ARK) == 20
    assert given.images_per_minute(ARK2) == 0  # off
    assert given.images_per_minute(VISUAL) == 6


def test_a_saturated_upstream_is_skipped_and_later_tasks_of_others_are_claimed() -> None:
    one = limits(VISUAL_CONCURRENCY=1)
    busy = Usage(under_way=1, calls=Counter(visual=1))
    queue = [task(1, VISUAL), task(2, ARK), task(3, VISUAL), task(4, ARK)]
    assert one.choose(busy, queue, room=4) == [2, 4]
    assert one.choose(Usage(), queue, room=4) == [1, 2, 4]  # the first Visual task fills it
    assert VISUAL in one.full(busy) and ARK not in one.full(busy)


def test_a_model_past_its_minute_is_skipped_without_holding_other_models() -> None:
    small = limits(MODEL_IMAGES_PER_MINUTE=f"{ARK}=3")
    queue = [task(1, ARK, 2), task(2, ARK, 2), task(3, ARK2, 4), task(4, ARK, 1)]
    # 2 of 3 taken by task 1; task 2 does not fit, and task 4, though it would, waits behind
    # it: first come, first served within a limit, so a big task is not starved
    assert small.choose(Usage(), queue, room=5) == [1, 3]
    used = Usage(images=Counter({ARK: 3}))
    assert ARK in small.full(used)
    assert small.choose(used, queue, room=5) == [3]


def test_a_group_reserves_all_its_images_in_one_call() -> None:
    small = limits(MODEL_IMAGES_PER_MINUTE=f"{ARK2}=10")
    group = task(1, ARK2, 4, group=True)
    assert group.slots == 1 and small.reserved(ARK2, group.images) == 4
    assert small.choose(Usage(images=Counter({ARK2: 7})), [group], room=1) == []
    assert small.choose(Usage(images=Counter({ARK2: 6})), [group], room=1) == [1]


def test_a_task_bigger_than_a_limit_takes_all_of_it_rather_than_never_running() -> None:
    tight = limits(VISUAL_CONCURRENCY=1, MODEL_IMAGES_PER_MINUTE=f"{ARK}=2")
    assert tight.calls_at_once(VISUAL, 4) == 1  # its four calls go one by one
    assert tight.reserved(ARK, 4) == 2
    assert tight.choose(Usage(), [task(1, VISUAL, 4), task(2, ARK, 4)], room=2) == [1, 2]
    assert limits(VISUAL_CONCURRENCY=0).calls_at_once(VISUAL, 4) == 4


def test_a_paused_model_is_skipped_and_its_upstreams_other_models_are_not() -> None:
    default = limits()
    paused = Usage(paused={ARK})
    assert default.choose(paused, [task(1, ARK), task(2, ARK2)], room=2) == [2]
    assert ARK in default.full(paused) and ARK2 not in default.full(paused)


def test_room_bounds_the_claim() -> None:
    assert limits().choose(Usage(), [task(i, ARK) for i in range(5)], room=2) == [0, 1]


def test_running_and_recent_tasks_count_against_their_limits() -> None:
    default = limits(VISUAL_CONCURRENCY=2)
    usage = Usage()
    default.count_running(usage, [task(1, VISUAL, 4), task(2, ARK, 3)])
    default.count_claimed(usage, [(ARK, 3, 1), (ARK2, 5, 2)])  # two groups of 5
    assert usage.under_way == 2
    assert usage.calls == Counter(visual=2, ark=3)
    assert usage.images == Counter({ARK: 3, ARK2: 10})


def test_a_row_of_a_task_is_read_as_its_load() -> None:
    assert load_of((7, ARK2, 3, {"group": True})) == Load(7, ARK2, 3, 1)
    assert load_of((8, ARK, 3, None)) == Load(8, ARK, 3, 3)
    # a layer decomposition: one call, which may make 17 images of the model's minute
    assert load_of((9, ARK, 17, {"layer_decomposition": True})) == Load(9, ARK, 17, 1)


def test_a_calls_time_is_the_models_own_times_the_images_it_makes() -> None:
    catalog = load_catalog()
    plain = catalog.get(ARK)
    slow = plain.model_copy(update={"request_timeout": 200.0})
    settings = load_settings(_env_file=None, REQUEST_TIMEOUT=100)
    assert call_timeout(settings, plain, 1) == 100  # no time of its own: REQUEST_TIMEOUT
    assert call_timeout(settings, slow, 1) == 200
    assert call_timeout(settings, slow, 4) == 800  # a group of 4
    assert call_timeout(settings, slow, 0) == 200
    overridden = load_settings(_env_file=None, MODEL_REQUEST_TIMEOUTS=f"{ARK}=50")
    assert call_timeout(overridden, slow, 3) == 150
