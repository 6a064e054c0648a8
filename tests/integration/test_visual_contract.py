"""Contract cases for the emulator's Visual API, each naming the fact of volcengine-api.md §2 it
checks, with requests signed by the `volcengine` SDK's SignerV4 (a second official signer
beside the provider's)."""

from __future__ import annotations

import asyncio
import base64
import io
import random
import time
from typing import Any

import httpx
import pytest
from PIL import Image as PILImage

from tests.support import signed_request
from volcimage.emulator.app import create_emulator_app
from volcimage.emulator.render import render_image

J40, J31, J30, G30, G20 = (
    "jimeng_t2i_v40",
    "jimeng_t2i_v31",
    "jimeng_t2i_v30",
    "high_aes_general_v30l_zt2i",
    "high_aes_general_v20_L",
)
J46, INPAINT, OUTPAINT, UPSCALE, I2I = (
    "jimeng_seedream46_cvtob",
    "jimeng_image2image_dream_inpaint",
    "jimeng_img2img_seed3_painting_edit",
    "jimeng_i2i_seed3_tilesr_cvtob",
    "jimeng_i2i_v30",
)
V2 = {"model_version": "general_v2.0_L"}
PNG = base64.b64encode(render_image("ref", 1, 300, 300, fmt="png")).decode()
WIDE = base64.b64encode(render_image("ref", 1, 1000, 200, fmt="png")).decode()
TWO_BY_ONE = base64.b64encode(render_image("ref", 1, 400, 200, fmt="png")).decode()


def _b64(picture: PILImage.Image) -> str:
    out = io.BytesIO()
    picture.save(out, "PNG")
    return base64.b64encode(out.getvalue()).decode()


MASK = _b64(PILImage.new("L", (300, 300), 255))
ALPHA_MASK = _b64(PILImage.new("RGBA", (300, 300), (0, 0, 0, 255)))
SMALL_MASK = _b64(PILImage.new("L", (200, 200), 255))
# noise does not compress: a PNG of 1400×1400 is about 5.9 MB, over the upscale's 4.7 MB
NOISE = _b64(PILImage.frombytes("RGB", (1400, 1400), random.Random(1).randbytes(1400 * 1400 * 3)))


@pytest.fixture
async def visual() -> Any:
    app = create_emulator_app()
    app.state.emulator.latency_ms = 0
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://emulator") as client:

        async def call(action: str, body: dict[str, Any]) -> httpx.Response:
            url, headers, content = signed_request(body, action=action)
            return await client.post(url, headers=headers, content=content)

        call.emulator = app.state.emulator  # type: ignore[attr-defined]
        yield call


ACCEPTED = [
    (
        "jimeng 4.0: size as width+height with area in [1024², 4096²]",
        J40,
        {"width": 2048, "height": 2048},
    ),
    ("jimeng 4.0: the smallest area, 1024×1024", J40, {"width": 1024, "height": 1024}),
    ("jimeng 4.0: the largest area, 4096×4096", J40, {"width": 4096, "height": 4096}),
    ("jimeng 4.0: aspect ratio 3:1 is the widest", J40, {"width": 3072, "height": 1024}),
    ("jimeng 4.0: scale in [0, 1]", J40, {"scale": 0.5}),
    ("jimeng 4.0: scale 0 is allowed", J40, {"scale": 0}),
    ("jimeng 4.0: up to 10 input images", J40, {"binary_data_base64": [PNG] * 10}),
    ("jimeng 4.0: force_single is accepted", J40, {"force_single": True}),
    ("jimeng 3.1: default 1328×1328", J31, {}),
    ("jimeng 3.1: preset 1664×936", J31, {"width": 1664, "height": 936}),
    ("jimeng 3.0: preset 2560×1440", J30, {"width": 2560, "height": 1440}),
    ("jimeng 3.1: the largest area, 2048×2048", J31, {"width": 2048, "height": 2048}),
    ("jimeng 3.1: the smallest area, 512×512", J31, {"width": 512, "height": 512}),
    ("general 3.0: ratio 1:3 is the tallest", G30, {"width": 768, "height": 2304}),
    ("seed -1 means random", J31, {"seed": -1}),
    ("seed up to 2147483647", J31, {"seed": 2147483647}),
    ("general 3.0: scale in [1, 10]", G30, {"scale": 10}),
    ("prompt of 800 characters is the longest", J31, {"prompt": "画" * 800}),
    ("use_pre_llm is accepted", J31, {"use_pre_llm": True}),
    ("jimeng 3.0: use_pre_llm off is accepted", J30, {"use_pre_llm": False}),
    ("general 3.0: use_pre_llm is accepted", G30, {"use_pre_llm": True}),
    ("jimeng 4.6: scale is an integer, up to 100", J46, {"scale": 100}),
    ("jimeng 4.6: scale 1 is the smallest", J46, {"scale": 1}),
    ("jimeng 4.6: up to 14 input images", J46, {"binary_data_base64": [PNG] * 14}),
    (
        "jimeng 4.0: min_ratio/max_ratio widen the ratio to 15:1 (set in [1/16, 16))",
        J40,
        {"width": 7500, "height": 500, "max_ratio": 15.5},
    ),
    (
        "jimeng 4.0: a tall 1:8 with min_ratio 1/8",
        J40,
        {"width": 512, "height": 4096, "min_ratio": 0.125},
    ),
    ("inpaint: the source and a grayscale mask", INPAINT, {"binary_data_base64": [PNG, MASK]}),
    ("inpaint: a mask with alpha", INPAINT, {"binary_data_base64": [PNG, ALPHA_MASK]}),
    (
        "inpaint: the prompt 删除 erases",
        INPAINT,
        {"prompt": "删除", "binary_data_base64": [PNG, MASK]},
    ),
    (
        "inpaint: a prompt of 120 characters is the longest",
        INPAINT,
        {"prompt": "画" * 120, "binary_data_base64": [PNG, MASK]},
    ),
    (
        "outpaint: each edge in [0, 1]",
        OUTPAINT,
        {"binary_data_base64": [PNG], "top": 1, "bottom": 1, "left": 1, "right": 1},
    ),
    ("outpaint: one edge is enough", OUTPAINT, {"binary_data_base64": [PNG], "left": 0.5}),
    ("upscale: to 4k", UPSCALE, {"binary_data_base64": [PNG], "resolution": "4k"}),
    (
        "upscale: to 8k, with no prompt",
        UPSCALE,
        {"prompt": "", "binary_data_base64": [PNG], "resolution": "8k"},
    ),
    (
        "image-to-image 3.0: one source, output sides in [512, 1536]",
        I2I,
        {"binary_data_base64": [PNG], "width": 1536, "height": 512},
    ),
]


@pytest.mark.parametrize(("fact", "req_key", "fields"), ACCEPTED)
async def test_submit_accepts(visual: Any, fact: str, req_key: str, fields: dict[str, Any]) -> None:
    body = {"req_key": req_key, "prompt": "a kite", **fields}
    response = await visual("CVSync2AsyncSubmitTask", body)
    assert response.status_code == 200, (fact, response.text)
    answer = response.json()
    assert answer["code"] == 10000 and answer["message"] == "Success", fact
    assert answer["request_id"] and answer["data"]["task_id"], fact


REFUSED = [
    ("an unknown req_key is a parameter error", "no_such_model", {}),
    ("jimeng 4.0: area below 1024² is refused", J40, {"width": 1000, "height": 1000}),
    ("jimeng 4.0: area above 4096² is refused", J40, {"width": 4097, "height": 4096}),
    ("jimeng 4.0: aspect ratio beyond 3:1 is refused", J40, {"width": 3200, "height": 1000}),
    ("jimeng 4.0: scale above 1 is refused", J40, {"scale": 1.5}),
    ("jimeng 4.0: more than 10 input images are refused", J40, {"binary_data_base64": [PNG] * 11}),
    ("jimeng 4.0: input ratio beyond 3:1 is refused", J40, {"binary_data_base64": [WIDE]}),
    ("jimeng 4.0: input that is not base64 is refused", J40, {"binary_data_base64": ["@@"]}),
    ("jimeng 3.1: area above 2048² is refused", J31, {"width": 2560, "height": 2048}),
    ("jimeng 3.1: area below 512² is refused", J31, {"width": 500, "height": 500}),
    ("jimeng 3.1: ratio beyond 3:1 is refused", J31, {"width": 2048, "height": 640}),
    ("jimeng 4.0 documents no seed", J40, {"seed": 7}),
    ("jimeng 3.1: takes no input images", J31, {"binary_data_base64": [PNG]}),
    ("a prompt over 800 characters is refused", J31, {"prompt": "画" * 801}),
    ("an empty prompt is refused", J31, {"prompt": "  "}),
    ("seed below -1 is refused", J31, {"seed": -2}),
    ("seed above 2147483647 is refused", J31, {"seed": 2147483648}),
    ("general 3.0: scale above 10 is refused", G30, {"scale": 11}),
    ("jimeng 3.1 takes no scale", J31, {"scale": 2}),
    ("width and height must be integers", J31, {"width": "big", "height": 1328}),
    ("jimeng 4.6: a fractional scale is refused", J46, {"scale": 2.5}),
    ("jimeng 4.6: scale above 100 is refused", J46, {"scale": 101}),
    ("jimeng 4.6: scale below 1 is refused", J46, {"scale": 0}),
    ("jimeng 4.6: more than 14 input images", J46, {"binary_data_base64": [PNG] * 15}),
    ("jimeng 4.0: max_ratio 16 is outside [1/16, 16)", J40, {"max_ratio": 16}),
    ("jimeng 4.0: min_ratio below 1/16 is refused", J40, {"min_ratio": 0.05}),
    (
        "jimeng 4.0: a size beyond max_ratio is refused",
        J40,
        {"width": 7500, "height": 500, "max_ratio": 10},
    ),
    ("jimeng 3.1: use_pre_llm must be a boolean", J31, {"use_pre_llm": "yes"}),
    ("jimeng 4.0 takes no use_pre_llm", J40, {"use_pre_llm": True}),
    ("inpaint: the mask is needed beside the source", INPAINT, {"binary_data_base64": [PNG]}),
    (
        "inpaint: a mask of another size is refused",
        INPAINT,
        {"binary_data_base64": [PNG, SMALL_MASK]},
    ),
    ("inpaint: a colour mask without alpha", INPAINT, {"binary_data_base64": [PNG, PNG]}),
    (
        "inpaint: a prompt over 120 characters",
        INPAINT,
        {"prompt": "画" * 121, "binary_data_base64": [PNG, MASK]},
    ),
    (
        "inpaint: takes no width or height",
        INPAINT,
        {"binary_data_base64": [PNG, MASK], "width": 1024, "height": 1024},
    ),
    ("inpaint: needs a source image", INPAINT, {}),
    ("outpaint: an edge above 1 is refused", OUTPAINT, {"binary_data_base64": [PNG], "left": 1.5}),
    ("outpaint: all edges 0 is refused", OUTPAINT, {"binary_data_base64": [PNG]}),
    ("upscale: resolution 4k or 8k", UPSCALE, {"binary_data_base64": [PNG], "resolution": "16k"}),
    (
        "upscale: an input over 4.7 MB is refused",
        UPSCALE,
        {"binary_data_base64": [NOISE], "resolution": "4k"},
    ),
    (
        "image-to-image 3.0: output sides above 1536 are refused",
        I2I,
        {"binary_data_base64": [PNG], "width": 2048, "height": 1024},
    ),
    ("image-to-image 3.0: one source, not two", I2I, {"binary_data_base64": [PNG, PNG]}),
    ("image-to-image 3.0: needs its source", I2I, {}),
    (
        "general 2.0 Pro is served by CVProcess, not as a job",
        G20,
        {"model_version": "general_v2.0_L"},
    ),
]


@pytest.mark.parametrize(("fact", "req_key", "fields"), REFUSED)
async def test_submit_refuses(visual: Any, fact: str, req_key: str, fields: dict[str, Any]) -> None:
    body = {"req_key": req_key, "prompt": "a kite", **fields}
    response = await visual("CVSync2AsyncSubmitTask", body)
    assert response.status_code == 400, (fact, response.text)
    answer = response.json()
    assert answer["code"] == 50400 and answer["message"], fact
    assert answer["data"] is None, fact


async def test_job_runs_in_queue_generating_then_done(visual: Any) -> None:
    """Fact: statuses in_queue → generating → done; done carries binary_data_base64 (PNG)."""
    visual.emulator.latency_ms = 300
    submit = await visual("CVSync2AsyncSubmitTask", {"req_key": J31, "prompt": "a kite"})
    job = submit.json()["data"]["task_id"]
    poll = {"req_key": J31, "task_id": job, "req_json": '{"return_url": false}'}
    seen = []
    deadline = time.monotonic() + 120  # a safety net for a busy machine
    while not seen or seen[-1] != "done":
        assert time.monotonic() < deadline
        data = (await visual("CVSync2AsyncGetResult", poll)).json()["data"]
        if not seen or seen[-1] != data["status"]:
            seen.append(data["status"])
    assert seen == ["in_queue", "generating", "done"]
    picture = base64.b64decode(data["binary_data_base64"][0])
    assert picture[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize(
    ("fact", "body"),
    [
        ("an unknown task_id is not_found", {"req_key": J31, "task_id": "nope"}),
        ("a task_id under another req_key is not_found", {"req_key": J40, "task_id": "{job}"}),
    ],
)
async def test_get_result_not_found(visual: Any, fact: str, body: dict[str, Any]) -> None:
    job = (await visual("CVSync2AsyncSubmitTask", {"req_key": J31, "prompt": "x"})).json()
    body = {**body, "task_id": body["task_id"].replace("{job}", job["data"]["task_id"])}
    answer = (await visual("CVSync2AsyncGetResult", body)).json()
    assert answer["code"] == 10000 and answer["data"]["status"] == "not_found", fact


@pytest.mark.parametrize(
    ("fact", "fields", "ok"),
    [
        ("CVProcess answers at once with the picture", {"model_version": "general_v2.0_L"}, True),
        ("general 2.0 Pro needs model_version", {}, False),
        ("ddim_steps in [1, 50]", {"model_version": "general_v2.0_L", "ddim_steps": 50}, True),
        (
            "ddim_steps above 50 is refused",
            {"model_version": "general_v2.0_L", "ddim_steps": 51},
            False,
        ),
        (
            "sides in [256, 768]",
            {"model_version": "general_v2.0_L", "width": 768, "height": 256},
            True,
        ),
        (
            "sides above 768 are refused",
            {"model_version": "general_v2.0_L", "width": 1024, "height": 1024},
            False,
        ),
    ],
)
async def test_cvprocess(visual: Any, fact: str, fields: dict[str, Any], ok: bool) -> None:
    response = await visual("CVProcess", {"req_key": G20, "prompt": "a kite", **fields})
    answer = response.json()
    if ok:
        assert answer["code"] == 10000 and answer["data"]["binary_data_base64"], fact
    else:
        assert response.status_code == 400 and answer["code"] == 50400, fact


async def test_cvprocess_refuses_an_asynchronous_model(visual: Any) -> None:
    """Fact: jimeng models run as asynchronous jobs (CVSync2AsyncSubmitTask)."""
    response = await visual("CVProcess", {"req_key": J31, "prompt": "a kite"})
    assert response.status_code == 400 and response.json()["code"] == 50400


async def test_unknown_action_is_refused(visual: Any) -> None:
    """Fact: requests name an Action; an unknown one is an error, not a success."""
    response = await visual("CVNoSuchAction", {"req_key": J31, "prompt": "a kite"})
    assert response.status_code == 400 and response.json()["code"] == 50400


@pytest.mark.parametrize(
    ("fault", "status", "code"),
    [
        ("rate_limit", 429, 50429),
        ("concurrency", 429, 50430),
        ("server_error", 500, 50500),
        ("sensitive", 400, 50412),
    ],
)
async def test_documented_error_codes(visual: Any, fault: str, status: int, code: int) -> None:
    """Facts: the error table — 50429/50430 with HTTP 429, 50500 with 500, 50412 with 400."""
    url, headers, content = signed_request({"req_key": J31, "prompt": "x"})
    app = create_emulator_app()
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://emulator") as client:
        response = await client.post(
            url, headers={**headers, "X-Emulator-Fault": fault}, content=content
        )
    assert response.status_code == status and response.json()["code"] == code


@pytest.mark.parametrize(
    ("fact", "req_json", "ok"),
    [
        ("a poll's req_json holds return_url", '{"return_url": false}', True),
        (
            "the watermark (logo_info) is sent at poll time",
            '{"logo_info": {"add_logo": true}}',
            True,
        ),
        ("the AIGC label (aigc_meta) is sent at poll time", '{"aigc_meta": {}}', True),
        ("req_json must be a JSON object in a string", "[1, 2]", False),
        ("req_json takes only what shows on the result", '{"width": 1024}', False),
    ],
)
async def test_poll_req_json(visual: Any, fact: str, req_json: str, ok: bool) -> None:
    job = (await visual("CVSync2AsyncSubmitTask", {"req_key": J40, "prompt": "x"})).json()
    poll = {"req_key": J40, "task_id": job["data"]["task_id"], "req_json": req_json}
    response = await visual("CVSync2AsyncGetResult", poll)
    assert (response.status_code == 200) is ok, (fact, response.text)
    assert (response.json()["code"] == 10000) is ok, fact


@pytest.mark.parametrize(
    ("fact", "body", "size"),
    [
        (
            "inpaint keeps the source's size",
            {"req_key": INPAINT, "binary_data_base64": [PNG, MASK]},
            (300, 300),
        ),
        (
            "outpaint extends each edge by its fraction of the side",
            {"req_key": OUTPAINT, "binary_data_base64": [PNG], "left": 0.5, "top": 1},
            (450, 600),
        ),
        (
            "upscale 4k makes the long side 4096 px",
            {"req_key": UPSCALE, "binary_data_base64": [TWO_BY_ONE], "resolution": "4k"},
            (4096, 2048),
        ),
    ],
)
async def test_tools_make_their_documented_size(
    visual: Any, fact: str, body: dict[str, Any], size: tuple[int, int]
) -> None:
    visual.emulator.latency_ms = 0
    job = (await visual("CVSync2AsyncSubmitTask", {"prompt": "a kite", **body})).json()
    poll = {"req_key": body["req_key"], "task_id": job["data"]["task_id"], "req_json": "{}"}
    data = (await visual("CVSync2AsyncGetResult", poll)).json()["data"]
    assert data["status"] == "done", fact
    with PILImage.open(io.BytesIO(base64.b64decode(data["binary_data_base64"][0]))) as made:
        assert made.size == size, fact


async def test_a_generation_beyond_the_accounts_concurrency_is_refused_with_50430(
    visual: Any,
) -> None:
    """Fact: concurrency per account (1–2 on new accounts); beyond it code 50430 with HTTP
    429, for a job of any req_key and for CVProcess alike; a job that is done frees it."""
    emulator = visual.emulator
    emulator.limits.visual_concurrency = 1
    emulator.visual_latency = 3_600_000  # the first job generates until told otherwise
    first = await visual("CVSync2AsyncSubmitTask", {"req_key": J31, "prompt": "a kite"})
    assert first.json()["code"] == 10000
    for action, body in (
        ("CVSync2AsyncSubmitTask", {"req_key": J40, "prompt": "a kite"}),
        ("CVProcess", {"req_key": G20, "prompt": "a kite", **V2}),
    ):
        refused = await visual(action, body)
        assert refused.status_code == 429 and refused.json()["code"] == 50430, action
    poll = {"req_key": J31, "task_id": first.json()["data"]["task_id"], "req_json": "{}"}
    assert (await visual("CVSync2AsyncGetResult", poll)).json()["code"] == 10000  # polls pass
    emulator.visual_latency = 0  # the job is done
    again = await visual("CVSync2AsyncSubmitTask", {"req_key": J40, "prompt": "a kite"})
    assert again.json()["code"] == 10000
    assert emulator.limits.stats() == {"visual_peak": 1, "visual_refused": 2, "ark_refused": 0}


async def test_cvprocess_calls_under_way_count_against_the_concurrency(visual: Any) -> None:
    """Fact: the concurrency limit counts generations under way; CVProcess answers only when
    its picture is made, so two at once with a limit of 1 are one made, one 50430."""
    visual.emulator.limits.visual_concurrency = 1
    visual.emulator.latency_ms = 200
    body = {"req_key": G20, "prompt": "a kite", **V2}
    answers = await asyncio.gather(visual("CVProcess", body), visual("CVProcess", body))
    assert sorted(a.json()["code"] for a in answers) == [10000, 50430]
    assert (await visual("CVProcess", body)).json()["code"] == 10000  # the first one ended
