"""check_request: the model-specific rules a request meets before it is admitted, each failure
naming its field."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest

from volcimage.catalog.models import Catalog, ModelInfo, Price, Range, SizeRule, load_catalog
from volcimage.core.errors import ValidationError
from volcimage.tasks.checks import check_request
from volcimage.tasks.schemas import GenerateRequest


def model(**changes: Any) -> ModelInfo:
    fields: dict[str, Any] = {
        "id": "m",
        "name": "M",
        "provider": "ark",
        "upstream_id": "up-m",
        "kind": "t2i",
        "description": "",
        "size_rule": SizeRule(mode="sides", min_side=512, max_side=2048),
        "default_size": "1024x768",
        "size_presets": [],
        "max_images": 4,
        "max_prompt_length": 10,
        "params": ["seed", "scale", "watermark"],
        "scale": Range(min=1, max=10, default=2.5),
        "prices": [Price(per_image=0.1, since=date(2025, 1, 1))],
        "currency": "CNY",
    }
    return ModelInfo(**(fields | changes))


def check(request: dict[str, Any], **changes: Any) -> tuple[ModelInfo, int, int]:
    catalog = Catalog(default_model="m", models=[model(**changes)])
    checked = check_request(GenerateRequest(**({"prompt": "x"} | request)), catalog)
    return checked.model, checked.width, checked.height


def refused(request: dict[str, Any], **changes: Any) -> dict[str, Any]:
    """The details of the ValidationError the request gets."""
    with pytest.raises(ValidationError) as info:
        check(request, **changes)
    return info.value.details


def test_the_default_model_and_size_fill_what_is_not_given() -> None:
    found, width, height = check({})
    assert found.id == "m" and (width, height) == (1024, 768)
    checked = check_request(GenerateRequest(prompt="x"), load_catalog())
    found, width, height = checked.model, checked.width, checked.height
    assert found.id == load_catalog().default_model
    assert (width, height) == found.default_dimensions


def test_an_unknown_model_lists_the_allowed_ones() -> None:
    with pytest.raises(ValidationError) as info:
        check_request(GenerateRequest(prompt="x", model="nope"), load_catalog())
    assert "seedream-3.0" in info.value.details["allowed"]


def test_the_prompt_is_bounded_by_the_model() -> None:
    assert check({"prompt": "x" * 10})
    assert refused({"prompt": "x" * 11}) == {"field": "prompt", "max_length": 10}


def test_images_per_task_are_bounded() -> None:
    assert check({"num_images": 4})
    assert refused({"num_images": 5}) == {"field": "num_images", "max": 4}


def test_groups_only_on_models_that_make_them() -> None:
    assert refused({"group": True}) == {"field": "group", "value": True}


def test_a_group_counts_its_reference_images() -> None:
    group_model = {"max_group_images": 15, "max_reference_images": 10}
    two = ["a", "b"]
    assert check({"group": True, "num_images": 13, "reference_images": two}, **group_model)
    details = refused({"group": True, "num_images": 14, "reference_images": two}, **group_model)
    assert details == {"field": "num_images", "max": 13}
    # outside a group the per-task bound applies, not the group's
    assert check({"num_images": 4, "reference_images": two}, **group_model)


@pytest.mark.parametrize(
    ("low", "high", "given", "message"),
    [
        (0, 0, 1, "M does not take reference images (got 1)"),
        (1, 1, 0, "M takes exactly 1 reference image(s) (got 0)"),
        (1, 1, 2, "M takes exactly 1 reference image(s) (got 2)"),
        (0, 10, 11, "M takes 0–10 reference images (got 11)"),
    ],
)
def test_reference_images_are_counted(low: int, high: int, given: int, message: str) -> None:
    bounds = {"min_reference_images": low, "max_reference_images": high}
    with pytest.raises(ValidationError) as info:
        check({"reference_images": ["r"] * given}, **bounds)
    assert info.value.message == message
    assert info.value.details == {"field": "reference_images", "min": low, "max": high}
    assert check({"reference_images": ["r"] * high}, **bounds)


def test_a_size_is_both_sides_or_neither() -> None:
    assert check({"width": 600, "height": 2000})[1:] == (600, 2000)
    assert refused({"width": 600}) == {"field": "width"}
    assert refused({"height": 600}) == {"field": "height"}


def test_a_size_meets_the_models_rule() -> None:
    assert refused({"width": 511, "height": 1024}) == {
        "field": "size",
        "width": 511,
        "height": 1024,
    }


def test_an_adaptive_model_takes_no_size_and_answers_its_default() -> None:
    adaptive = {"size_rule": SizeRule(mode="adaptive")}
    assert check({}, **adaptive)[1:] == (1024, 768)
    assert refused({"width": 1024, "height": 1024}, **adaptive) == {"field": "width"}


@pytest.mark.parametrize(
    ("request_", "name"),
    [
        ({"steps": 20}, "steps"),
        ({"negative_prompt": "blur"}, "negative_prompt"),
    ],
)
def test_a_parameter_the_model_does_not_take_is_refused(
    request_: dict[str, Any], name: str
) -> None:
    assert refused(request_) == {"field": name, "supported": ["seed", "scale", "watermark"]}


def test_a_blank_negative_prompt_is_not_a_given_parameter() -> None:
    assert check({"negative_prompt": "  "})


@pytest.mark.parametrize(("value", "ok"), [(1.0, True), (10.0, True), (0.5, False), (10.5, False)])
def test_scale_is_bounded_by_the_model(value: float, ok: bool) -> None:
    if ok:
        assert check({"scale": value})
    else:
        assert refused({"scale": value}) == {"field": "scale", "min": 1, "max": 10}


def test_steps_are_bounded_by_the_model() -> None:
    stepped = {"params": ["steps"], "scale": None, "steps": Range(min=1, max=50, default=16)}
    assert check({"steps": 50}, **stepped)
    assert refused({"steps": 51}, **stepped) == {"field": "steps", "min": 1, "max": 50}


def test_a_parameter_without_bounds_in_the_catalog_takes_any_value() -> None:
    assert check({"scale": 99.0}, scale=None)
