"""check_request: the model-specific rules a request meets before it is admitted, each failure
naming its field."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest

from volcimage.catalog.models import (
    Catalog,
    InputRule,
    ModelInfo,
    Price,
    Range,
    SizeRule,
    load_catalog,
)
from volcimage.core.errors import ValidationError
from volcimage.tasks.checks import Input, check_inputs, check_request, output_size
from volcimage.tasks.params import images_asked
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


# ---- today's models: options, tools, guidance, retired ----------------------------------------


def test_a_retired_model_refuses_new_tasks_naming_itself() -> None:
    with pytest.raises(ValidationError) as info:
        check({}, retired=True)
    assert info.value.code == "model_retired" and "M (m)" in info.value.message
    assert info.value.details == {"field": "model", "value": "m", "retired": True}


@pytest.mark.parametrize(
    ("given", "field"),
    [
        ({"output_format": "png"}, "output_format"),
        ({"optimize_prompt": "fast"}, "optimize_prompt"),
        ({"web_search": True}, "web_search"),
        ({"use_pre_llm": False}, "use_pre_llm"),
        ({"background": "transparent"}, "background"),
        ({"upscale": "4k"}, "upscale"),
    ],
)
def test_each_option_is_refused_by_a_model_that_does_not_take_it(
    given: dict[str, Any], field: str
) -> None:
    assert refused(given)["field"] == field


def test_an_option_takes_only_the_models_choices() -> None:
    options = {"params": ["optimize_prompt"], "choices": {"optimize_prompt": ["standard"]}}
    assert check({"optimize_prompt": "standard"}, **options)
    details = refused({"optimize_prompt": "fast"}, **options)
    assert details == {"field": "optimize_prompt", "allowed": ["standard"]}


def test_a_whole_number_scale_refuses_a_fraction() -> None:
    whole = {"scale": Range(min=1, max=100, default=50, integer=True)}
    assert check({"scale": 50}, **whole)
    details = refused({"scale": 2.5}, **whole)
    assert details == {"field": "scale", "min": 1, "max": 100, "integer": True}


TOOL: dict[str, Any] = {
    "kind": "inpaint",
    "takes_source": True,
    "size_rule": SizeRule(mode="adaptive"),
    "params": ["mask", "seed"],
    "max_images": 1,
}


def test_a_tool_takes_no_watermark() -> None:
    given = {"source_image_id": "s", "mask": "k", "watermark": True}
    assert refused(given, **TOOL) == {"field": "watermark", "supported": ["mask", "seed"]}


def test_a_tool_needs_its_source_and_a_model_takes_none() -> None:
    assert refused({"mask": "k"}, **TOOL) == {"field": "source_image_id"}
    assert check({"source_image_id": "s", "mask": "k"}, **TOOL)
    assert refused({"source_image_id": "s"}) == {"field": "source_image_id"}


@pytest.mark.parametrize(
    ("kind", "needed"), [("inpaint", "mask"), ("outpaint", "outpaint"), ("upscale", "upscale")]
)
def test_each_tool_needs_its_own_parameter(kind: str, needed: str) -> None:
    tool = TOOL | {"kind": kind, "params": [needed]}
    assert refused({"source_image_id": "s"}, **tool) == {"field": needed}


def test_an_outpaint_extends_at_least_one_edge() -> None:
    tool = TOOL | {"kind": "outpaint", "params": ["outpaint"]}
    zero = {"source_image_id": "s", "outpaint": {"top": 0}}
    assert refused(zero, **tool) == {"field": "outpaint", "min": 0}


def test_only_an_upscale_goes_without_a_prompt() -> None:
    assert refused({"prompt": "  "}) == {"field": "prompt"}
    tool = TOOL | {"kind": "upscale", "params": ["upscale"], "prompt_required": False}
    assert check({"prompt": "", "source_image_id": "s", "upscale": "8k"}, **tool)


def test_a_prompt_past_the_guidance_passes_with_a_warning() -> None:
    guided = {"prompt_guidance": 300, "max_prompt_length": 5000}
    catalog = Catalog(default_model="m", models=[model(**guided)])
    assert check_request(GenerateRequest(prompt="画" * 300), catalog).warnings == []
    han = check_request(GenerateRequest(prompt="画" * 301), catalog).warnings
    assert len(han) == 1 and "301 Chinese characters" in han[0]
    words = check_request(GenerateRequest(prompt="cat " * 601), catalog).warnings
    assert len(words) == 1 and "601 words" in words[0]


def test_a_tools_size_follows_its_source() -> None:
    tool = model(**TOOL)
    edges = GenerateRequest(prompt="x", outpaint={"left": 0.5, "top": 1})
    out = model(**(TOOL | {"kind": "outpaint"}))
    assert output_size(edges, out, (400, 300), (1, 1)) == (600, 600)
    up = model(**(TOOL | {"kind": "upscale"}))
    assert output_size(GenerateRequest(upscale="8k"), up, (400, 200), (1, 1)) == (8192, 4096)
    assert output_size(GenerateRequest(prompt="x"), tool, (400, 300), (1, 1)) == (400, 300)
    sized = model(takes_source=True)  # image-to-image: the size asked for
    assert output_size(GenerateRequest(prompt="x"), sized, (400, 300), (512, 512)) == (512, 512)


def test_inputs_meet_the_models_limits_and_a_mask_its_source() -> None:
    limited = model(inputs=InputRule(max_bytes=4928307, max_side=500))  # the upscale's 4.7 MB
    source = Input("source_image_id", "s", 400, 300, 900)
    check_inputs(limited, [source, Input("mask", "k", 400, 300, 10, "L")])
    with pytest.raises(ValidationError, match=r"it is 4\.8 MB; the model takes at most 4\.7 MB"):
        check_inputs(limited, [Input("source_image_id", "s", 400, 300, 5_000_000)])
    with pytest.raises(ValidationError, match="15–500 px"):
        check_inputs(limited, [Input("reference_images", "r", 501, 300, 10)])
    with pytest.raises(ValidationError, match="source's size") as info:
        check_inputs(limited, [source, Input("mask", "k", 300, 300, 10, "L")])
    assert info.value.details == {"field": "mask", "width": 400, "height": 300}
    with pytest.raises(ValidationError, match="single-channel"):
        check_inputs(limited, [source, Input("mask", "k", 400, 300, 10, "RGB")])
    check_inputs(limited, [source, Input("mask", "k", 400, 300, 10, "RGBA")])


def test_a_layer_decomposition_is_one_call_reserving_seventeen_images() -> None:
    layered = {"params": ["layer_decomposition"]}
    assert check({"layer_decomposition": True}, **layered)
    assert images_asked(GenerateRequest(prompt="x", layer_decomposition=True)) == 17
    assert images_asked(GenerateRequest(prompt="x", num_images=3)) == 3
    two = refused({"layer_decomposition": True, "num_images": 2}, **layered)
    assert two == {"field": "num_images", "max": 1}
    assert refused({"layer_decomposition": True})["field"] == "layer_decomposition"
