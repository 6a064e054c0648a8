"""The estimate of how long a task takes: learned from runs of its model, by size class."""

from __future__ import annotations

from volcimage.tasks.estimates import SECONDS_PER_IMAGE, Run, estimate, size_class


def _runs(seconds: list[float], size: int = 1024, count: int = 1, group: bool = False) -> list[Run]:
    return [Run(size, size, count, group, s) for s in seconds]


def test_a_model_never_run_falls_back_to_the_constant_per_image() -> None:
    assert estimate([], 1024, 1024, 3, False) == 3 * SECONDS_PER_IMAGE


def test_the_median_of_recent_runs_is_not_moved_by_one_slow_call() -> None:
    assert estimate(_runs([10, 12, 11, 300]), 1024, 1024, 1, False) == 12  # median 11.5
    assert estimate(_runs([10, 12, 14]), 1024, 1024, 4, False) == 12, "images run side by side"


def test_runs_of_the_same_size_class_are_preferred_then_any_size() -> None:
    runs = _runs([10, 10, 10]) + _runs([50, 50], size=2048)
    assert estimate(runs, 2048, 2048, 1, False) == 50
    assert estimate(runs, 1280, 720, 1, False) == 10
    assert estimate(_runs([10, 10]), 4096, 4096, 1, False) == 10, "no 4K run yet: any size"


def test_a_group_grows_with_its_images_as_they_stream_one_after_another() -> None:
    runs = _runs([40, 40], count=4, group=True)  # 10 s an image
    assert estimate(runs, 1024, 1024, 6, True) == 60
    assert estimate(runs, 1024, 1024, 2, False) == 10


def test_size_classes() -> None:
    assert size_class(1024, 1024) == size_class(1280, 720) == 0
    assert size_class(2048, 2048) == size_class(2560, 1440) == 1
    assert size_class(4096, 4096) == 2
