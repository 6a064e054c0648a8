"""The generation parameters: one type, stored in a task's columns and read back unchanged,
shown by the API, and viewed in part by presets with the same bounds."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from volcimage.tasks.models import Task
from volcimage.tasks.params import (
    COLUMNS,
    IN_JSON,
    GenerationParams,
    TaskParams,
    partial,
    references_of,
)
from volcimage.tasks.schemas import GenerateRequest, TaskPublic

REQUEST = GenerateRequest(
    prompt="  a cat  ",
    negative_prompt="blurry",
    num_images=2,
    steps=30,
    scale=2.5,
    seed=42,
    watermark=True,
    reference_images=["upload-1", "image-1"],
)


INPUTS = [{"kind": "upload", "id": "upload-1"}, {"kind": "image", "id": "image-1"}]


def stored(params: TaskParams, **columns: Any) -> Task:
    return Task(**params.task_columns("ark", INPUTS), **columns)


def test_the_parameters_with_a_column_are_stored_there_and_the_rest_in_the_json() -> None:
    assert COLUMNS == (
        "prompt",
        "negative_prompt",
        "model",
        "width",
        "height",
        "num_images",
        "steps",
        "scale",
        "seed",
    )
    assert IN_JSON == (
        "watermark",
        "group",
        "reference_images",
        "output_format",
        "optimize_prompt",
        "web_search",
        "use_pre_llm",
        "background",
        "layer_decomposition",
        "source_image_id",
        "mask",
        "outpaint",
        "upscale",
    )


def test_a_task_is_stored_with_the_model_and_size_chosen_as_it_always_was() -> None:
    params = TaskParams.chosen(REQUEST, "seedream-3.0", 1024, 768)
    columns = params.task_columns("ark", INPUTS)
    assert columns == {
        "prompt": "a cat",  # as the request's validation left it
        "negative_prompt": "blurry",
        "model": "seedream-3.0",
        "width": 1024,
        "height": 768,
        "num_images": 2,
        "steps": 30,
        "scale": 2.5,
        "seed": 42,
        "params": {
            "watermark": True,
            "group": False,
            "reference_images": [
                {"kind": "upload", "id": "upload-1"},
                {"kind": "image", "id": "image-1"},
            ],
            "web_search": False,
            "layer_decomposition": False,
            "provider": "ark",
        },
    }


def test_a_stored_task_gives_back_its_parameters() -> None:
    params = TaskParams.chosen(REQUEST, "seedream-3.0", 1024, 768)
    task = stored(params)
    assert TaskParams.of_task(task) == params
    assert references_of(task) == [
        {"kind": "upload", "id": "upload-1"},
        {"kind": "image", "id": "image-1"},
    ]


def test_a_task_stored_before_a_parameter_existed_reads_it_as_its_default() -> None:
    task = Task(prompt="a cat", model="m", width=512, height=512, num_images=1, params={})
    params = TaskParams.of_task(task)
    assert (params.watermark, params.group, params.reference_images) == (False, False, [])
    assert references_of(Task(params=None)) == []


def test_the_api_shows_every_parameter_with_a_column() -> None:
    assert set(COLUMNS) <= set(TaskPublic.model_fields)


def test_a_request_is_the_parameters() -> None:
    assert set(GenerateRequest.model_fields) == set(GenerationParams.model_fields)
    with pytest.raises(ValidationError):
        GenerateRequest(prompt="a cat", style="anime")  # type: ignore[call-arg]


PRESET = partial("Preset", "A test view.", without={"prompt", "negative_prompt", "model"})


def test_a_partial_view_has_every_other_field_optional() -> None:
    assert list(PRESET.model_fields) == [
        name for name in GenerationParams.model_fields if name not in COLUMNS[:3]
    ]
    empty = PRESET.model_validate({})
    assert all(value is None for value in empty.model_dump().values())
    assert PRESET.__doc__ == "A test view."
    with pytest.raises(ValidationError):
        PRESET.model_validate({"style": "anime"})


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("num_images", 16),
        ("width", 0),
        ("seed", 2**31),
        ("scale", 101.0),
        ("steps", 201),
        ("reference_images", ["x"] * 15),
        ("watermark", 1),  # strict, as the request
    ],
)
def test_a_partial_view_has_the_same_bounds(field: str, value: object) -> None:
    with pytest.raises(ValidationError) as request:
        GenerationParams.model_validate({"prompt": "a cat", field: value})
    with pytest.raises(ValidationError) as preset:
        PRESET.model_validate({field: value})
    assert request.value.errors()[0]["type"] == preset.value.errors()[0]["type"]
    assert preset.value.errors()[0]["loc"] == (field,)
