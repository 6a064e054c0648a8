"""The emulator as a real server, called by the official Ark SDK (sync and async) unchanged.

Each test names the fact of `volcengine-api.md` §1 it checks.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Callable, Iterator

import pytest
from PIL import Image as PILImage
from volcenginesdkarkruntime import Ark, AsyncArk
from volcenginesdkarkruntime._exceptions import (
    ArkAuthenticationError,
    ArkBadRequestError,
    ArkInternalServerError,
    ArkNotFoundError,
    ArkRateLimitError,
)
from volcenginesdkarkruntime.types.images import SequentialImageGenerationOptions

from tests.support import local, serve_app
from volcimage.core.config import load_settings
from volcimage.emulator.app import create_emulator_app
from volcimage.emulator.render import render_image

SEEDREAM_3 = "doubao-seedream-3-0-t2i-250415"
SEEDREAM_4 = "doubao-seedream-4-0-250828"
SEEDREAM_45 = "doubao-seedream-4-5-251128"
SEEDEDIT = "doubao-seededit-3-0-i2i-250628"


@pytest.fixture(scope="module")
def emulator_url() -> Iterator[str]:
    with serve_app(
        create_emulator_app(load_settings(_env_file=None, EMULATOR_LATENCY_MS=0))
    ) as url:
        yield url


@pytest.fixture
def ark(emulator_url: str) -> Ark:
    return Ark(api_key="test-key", base_url=f"{emulator_url}/api/v3", max_retries=0)


@pytest.fixture
def async_ark(emulator_url: str) -> AsyncArk:
    return AsyncArk(api_key="test-key", base_url=f"{emulator_url}/api/v3", max_retries=0)


def picture_size(data: bytes) -> tuple[int, int]:
    with PILImage.open(io.BytesIO(data)) as image:
        assert image.format == "JPEG"  # fact: output is JPEG for Seedream/SeedEdit
        return image.size


@pytest.mark.parametrize(
    ("model", "size", "expected"),
    [
        (SEEDREAM_3, "512x512", (512, 512)),  # fact: 3.0 WxH from 512x512
        (SEEDREAM_3, "2048x1024", (2048, 1024)),  # fact: up to 2048 per side
        (SEEDREAM_3, None, (1024, 1024)),  # fact: 3.0 default 1024x1024
        (SEEDREAM_4, "1K", (1024, 1024)),  # fact: 4.0 accepts 1K/2K/4K
        (SEEDREAM_4, "2K", (2048, 2048)),
        (SEEDREAM_4, "1280x720", (1280, 720)),  # fact: 4.0 w·h ≥ 1280·720
        (SEEDREAM_4, None, (2048, 2048)),  # fact: 4.0 default 2048x2048
        (SEEDREAM_45, "2560x1440", (2560, 1440)),  # fact: 4.5 w·h ≥ 2560·1440
    ],
)
def test_sync_sdk_url_results_for_each_size_form(
    ark: Ark, model: str, size: str | None, expected: tuple[int, int]
) -> None:
    """Fact: response `data: [{url, size}]`; URLs download the JPEG of that size."""
    response = ark.images.generate(model=model, prompt="harbour at dawn", size=size)
    assert response.model == model
    (item,) = response.data
    assert item.size == f"{expected[0]}x{expected[1]}"
    assert picture_size(local.get(item.url).content) == expected


async def test_async_sdk_b64_result_and_usage_tokens(async_ark: AsyncArk) -> None:
    """Fact: `b64_json` returns the picture inline; output_tokens = Σ(w·h)/256."""
    response = await async_ark.images.generate(
        model=SEEDREAM_3, prompt="fox", size="768x512", response_format="b64_json", seed=5
    )
    (item,) = response.data
    assert picture_size(base64.b64decode(item.b64_json)) == (768, 512)
    assert response.usage.generated_images == 1
    assert response.usage.output_tokens == 768 * 512 // 256


def test_same_prompt_and_seed_give_the_same_picture(ark: Ark) -> None:
    """Emulator contract: deterministic pictures from (prompt, seed)."""
    kwargs = {"model": SEEDREAM_3, "size": "512x512", "response_format": "b64_json", "seed": 9}
    first = ark.images.generate(prompt="cat", **kwargs).data[0].b64_json
    again = ark.images.generate(prompt="cat", **kwargs).data[0].b64_json
    other = ark.images.generate(prompt="dog", **kwargs).data[0].b64_json
    assert first == again and first != other


def test_seededit_takes_an_image_and_adaptive_size(ark: Ark) -> None:
    """Fact: SeedEdit 3.0 edits one image (URL or data URL); size only `adaptive`."""
    wide = render_image("a street", 1, 1500, 500, fmt="png")
    data_url = "data:image/png;base64," + base64.b64encode(wide).decode()
    response = ark.images.generate(
        model=SEEDEDIT, prompt="make it snow", image=data_url, size="adaptive"
    )
    assert len(response.data) == 1
    assert response.data[0].size == "1536x512", "the preset nearest the input's 3:1 ratio"
    with pytest.raises(ArkBadRequestError) as info:
        ark.images.generate(model=SEEDEDIT, prompt="make it snow", size="adaptive")
    assert info.value.code == "InvalidParameter" and info.value.param == "image"


def test_reference_images_are_checked_as_documented(ark: Ark) -> None:
    """Facts: references are data URLs of real pictures; SeedEdit takes one, ratio [1/3, 3];
    Seedream 4.x takes up to 14 (issue 17: 4.0, 4.5 and 5.0 lite)."""
    fake = "data:image/png;base64," + base64.b64encode(b"\x89PNG fake").decode()
    too_wide = render_image("a band", 1, 2000, 500, fmt="png")
    square = (
        "data:image/png;base64,"
        + base64.b64encode(render_image("a tile", 2, 256, 256, fmt="png")).decode()
    )
    cases = [
        (SEEDEDIT, fake),
        (SEEDEDIT, "data:image/png;base64," + base64.b64encode(too_wide).decode()),
        (SEEDEDIT, [square, square]),
        (SEEDREAM_4, [square] * 15),
        (SEEDREAM_3, square),
    ]
    for model, image in cases:
        with pytest.raises(ArkBadRequestError) as info:
            ark.images.generate(model=model, prompt="x", image=image)
        assert info.value.param == "image", (model, info.value)
    ok = ark.images.generate(model=SEEDREAM_4, prompt="blend", image=[square] * 3, size="2K")
    assert len(ok.data) == 1


async def test_group_generation_returns_max_images(async_ark: AsyncArk) -> None:
    """Fact: 4.x groups: sequential_image_generation=auto with max_images."""
    response = await async_ark.images.generate(
        model=SEEDREAM_4,
        prompt="four seasons",
        size="1K",
        sequential_image_generation="auto",
        sequential_image_generation_options=SequentialImageGenerationOptions(max_images=3),
    )
    assert len(response.data) == 3
    assert response.usage.generated_images == 3


async def test_stream_yields_each_image_then_completed(async_ark: AsyncArk) -> None:
    """Fact: stream=true sends one event per image, then image_generation.completed."""
    stream = await async_ark.images.generate(
        model=SEEDREAM_4,
        prompt="comic strip",
        size="1K",
        stream=True,
        sequential_image_generation="auto",
        sequential_image_generation_options=SequentialImageGenerationOptions(max_images=2),
    )
    events = [event async for event in stream]
    assert [e.type for e in events] == [
        "image_generation.partial_succeeded",
        "image_generation.partial_succeeded",
        "image_generation.completed",
    ]
    assert events[0].url.startswith("http") and events[0].size == "1024x1024"
    usage = events[-1].usage  # the SDK leaves a stream event's nested usage as a plain dict
    assert (usage["generated_images"] if isinstance(usage, dict) else usage.generated_images) == 2


@pytest.mark.parametrize(
    ("kwargs", "param"),
    [
        ({"model": SEEDREAM_3, "size": "511x512"}, "size"),  # fact: 3.0 sides ≥ 512
        ({"model": SEEDREAM_3, "size": "4096x4096"}, "size"),  # fact: 3.0 sides ≤ 2048
        ({"model": SEEDREAM_4, "size": "1280x719"}, "size"),  # fact: 4.0 w·h ≥ 1280·720
        ({"model": SEEDREAM_4, "size": "4096x255"}, "size"),  # fact: ratio ≤ 16
        ({"model": SEEDREAM_45, "size": "1K"}, "size"),  # fact: 4.5 only 2K/4K
        ({"model": SEEDREAM_3, "seed": -2}, "seed"),  # fact: seed in [-1, 2147483647]
        ({"model": SEEDREAM_3, "seed": 2147483648}, "seed"),
        ({"model": SEEDREAM_3, "guidance_scale": 10.5}, "guidance_scale"),  # fact: 1–10
        ({"model": SEEDREAM_3, "response_format": "png"}, "response_format"),
    ],
)
def test_invalid_parameters_are_400_invalid_parameter(
    ark: Ark, kwargs: dict[str, object], param: str
) -> None:
    """Fact: error body {error: {code, message, param, type}}; message ends in Request ID."""
    with pytest.raises(ArkBadRequestError) as info:
        ark.images.generate(prompt="x", **kwargs)  # type: ignore[arg-type]
    assert info.value.code == "InvalidParameter"
    assert info.value.param == param
    assert info.value.type == "BadRequest"
    assert "Request ID:" in info.value.body["message"]  # type: ignore[index]
    assert info.value.response.headers["x-request-id"]


def test_unknown_model_is_404_and_bad_key_is_401(emulator_url: str, ark: Ark) -> None:
    """Fact: 404 InvalidEndpointOrModel.NotFound; 401 AuthenticationError."""
    with pytest.raises(ArkNotFoundError) as info:
        ark.images.generate(model="doubao-nope", prompt="x")
    assert info.value.code == "InvalidEndpointOrModel.NotFound"
    bad = Ark(api_key="invalid-key", base_url=f"{emulator_url}/api/v3", max_retries=0)
    with pytest.raises(ArkAuthenticationError) as auth:
        bad.images.generate(model=SEEDREAM_3, prompt="x")
    assert auth.value.code == "AuthenticationError"


@pytest.mark.parametrize(
    ("fault", "error", "code"),
    [
        ("rate_limit", ArkRateLimitError, "ModelAccountIpmRateLimitExceeded"),
        ("quota", ArkRateLimitError, "QuotaExceeded"),
        ("server_error", ArkInternalServerError, "InternalServiceError"),
        ("sensitive", ArkBadRequestError, "OutputImageSensitiveContentDetected"),
        ("input_sensitive", ArkBadRequestError, "InputTextSensitiveContentDetected"),
    ],
)
def test_injected_faults_surface_as_the_sdk_error_classes(
    ark: Ark, fault: str, error: type[Exception], code: str
) -> None:
    """Fact: documented HTTP status and code per error class; rate limits carry Retry-After."""
    with pytest.raises(error) as info:
        ark.images.generate(model=SEEDREAM_3, prompt="x", extra_headers={"X-Emulator-Fault": fault})
    assert info.value.code == code  # type: ignore[attr-defined]
    if fault == "rate_limit":
        assert info.value.response.headers["retry-after"] == "1"  # type: ignore[attr-defined]


@pytest.fixture
def ipm_limits(emulator_url: str) -> Iterator[Callable[[dict[str, int]], None]]:
    def set_limits(per_model: dict[str, int]) -> None:
        given = {"ark_images_per_minute": per_model}
        local.post(f"{emulator_url}/_emulator/limits", json=given).raise_for_status()

    yield set_limits
    set_limits({})  # the module's other tests run without


def test_images_beyond_a_models_minute_are_refused_with_429_and_retry_after(
    ark: Ark, ipm_limits: Callable[[dict[str, int]], None]
) -> None:
    """Fact: rate limits are per account and model in images per minute (IPM): beyond them
    HTTP 429 `ModelAccountIpmRateLimitExceeded` with Retry-After; another model goes on."""
    ipm_limits({SEEDREAM_3: 2})
    for _ in range(2):
        ark.images.generate(model=SEEDREAM_3, prompt="within the minute")
    with pytest.raises(ArkRateLimitError) as info:
        ark.images.generate(model=SEEDREAM_3, prompt="beyond it")
    assert info.value.code == "ModelAccountIpmRateLimitExceeded"
    wait = int(info.value.response.headers["retry-after"])
    assert 1 <= wait <= 60  # until the oldest image leaves the minute
    assert ark.images.generate(model=SEEDREAM_4, prompt="another model").data


def test_a_group_call_counts_each_of_its_images_against_the_minute(
    ark: Ark, ipm_limits: Callable[[dict[str, int]], None]
) -> None:
    """Fact: IPM counts images, so a group of n images takes n of the minute."""
    ipm_limits({SEEDREAM_4: 3})
    group = ark.images.generate(
        model=SEEDREAM_4,
        prompt="a series",
        sequential_image_generation="auto",
        sequential_image_generation_options=SequentialImageGenerationOptions(max_images=3),
    )
    assert len(group.data) == 3
    with pytest.raises(ArkRateLimitError) as info:
        ark.images.generate(model=SEEDREAM_4, prompt="one more")
    assert info.value.code == "ModelAccountIpmRateLimitExceeded"


def test_missing_prompt_is_missing_parameter_and_stats_count_calls(emulator_url: str) -> None:
    """Fact: MissingParameter for an absent required field."""
    before = local.get(f"{emulator_url}/_emulator/stats").json()
    response = local.post(
        f"{emulator_url}/api/v3/images/generations",
        json={"model": SEEDREAM_3, "prompt": None},
        headers={"Authorization": "Bearer k"},
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "MissingParameter"
    after = local.get(f"{emulator_url}/_emulator/stats").json()
    assert after["generation_calls"] == before["generation_calls"] + 1
    assert after["generation_failures"] == before["generation_failures"] + 1
