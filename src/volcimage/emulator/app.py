"""A VolcEngine emulator: Ark's image generation API, faithful enough for the official SDK, and
the Visual API (`emulator/visual.py`).

Facts followed are those of `volcengine-api.md` §1; tests name the fact they check. Not part of
the real API: `/_emulator/*` (call counters and fault injection) and per-request headers
`X-Emulator-Fault` and `X-Emulator-Latency-Ms`.
"""

from __future__ import annotations

import asyncio
import base64
import json
import random
import re
import time
import uuid
from collections import OrderedDict
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse

from volcimage.core.config import Settings, get_settings
from volcimage.emulator.references import check_picture, decode_reference
from volcimage.emulator.render import render_image
from volcimage.emulator.visual import DEMO_ACCESS_KEY, DEMO_SECRET_KEY, add_visual_routes

MAX_SEED = 2147483647
MAX_PROMPT = 1000  # assumption: the docs recommend ≤ 300 Chinese chars / 600 words, no hard cap
NAMED_SIZES = {"1K": (1024, 1024), "2K": (2048, 2048), "4K": (4096, 4096)}
KEPT_FILES = 500


@dataclass(frozen=True)
class ArkModel:
    sizes: str  # "sides" | "area" | "adaptive"
    default: tuple[int, int]
    min_side: int = 512
    max_side: int = 2048
    min_pixels: int = 0
    named: tuple[str, ...] = ()
    seed_and_scale: bool = True
    needs_image: bool = False
    groups: bool = False
    max_references: int = 0
    reference_ratio: tuple[float, float] = (1 / 16, 16)


MODELS = {
    "doubao-seedream-3-0-t2i-250415": ArkModel("sides", (1024, 1024)),
    "doubao-seededit-3-0-i2i-250628": ArkModel(
        "adaptive", (1024, 1024), needs_image=True, max_references=1, reference_ratio=(1 / 3, 3)
    ),
    "doubao-seedream-4-0-250828": ArkModel(
        "area",
        (2048, 2048),
        min_pixels=1280 * 720,
        named=("1K", "2K", "4K"),
        seed_and_scale=False,
        groups=True,
        max_references=10,
    ),
    "doubao-seedream-4-5-251128": ArkModel(
        "area",
        (2048, 2048),
        min_pixels=2560 * 1440,
        named=("2K", "4K"),
        seed_and_scale=False,
        groups=True,
        max_references=10,
    ),
}

FAULTS: dict[str, tuple[int, str, str, dict[str, str]]] = {
    "rate_limit": (
        429,
        "ModelAccountIpmRateLimitExceeded",
        "TooManyRequests",
        {"Retry-After": "1"},
    ),
    "server_error": (500, "InternalServiceError", "InternalServerError", {}),
    "sensitive": (400, "OutputImageSensitiveContentDetected", "BadRequest", {}),
    "quota": (429, "QuotaExceeded", "TooManyRequests", {}),
    "auth": (401, "AuthenticationError", "Unauthorized", {}),
}
# Faults that let the generation succeed and spoil its answer or the download of its result.
DOWNLOAD_FAULTS = ("expired_url", "truncated", "group_partial", "group_short", "stream_cut")
# group_partial: the second image of a group fails the content check; the rest go on (the docs)
# group_short: the group ends, normally, one image short of max_images (the model decides)
# stream_cut: a group's stream stops after its first image, without its `completed` event
REFUSED_IN_GROUP = {
    "code": "OutputImageSensitiveContentDetected",
    "message": "The generated image may contain sensitive content.",
}


class ArkError(Exception):
    def __init__(
        self, status: int, code: str, message: str, param: str = "", kind: str = ""
    ) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.param = status, code, message, param
        self.kind = kind or {400: "BadRequest", 401: "Unauthorized", 404: "NotFound"}.get(
            status, ""
        )
        self.headers: dict[str, str] = {}


@dataclass
class EmulatorState:
    latency_ms: int
    download_latency_ms: int
    jitter: float = 0.0
    faults: list[str] = field(default_factory=list)
    files: OrderedDict[str, bytes] = field(default_factory=OrderedDict)
    truncate_once: set[str] = field(default_factory=set)
    generation_calls: int = 0
    generation_failures: int = 0
    images_generated: int = 0
    downloads: int = 0
    in_flight: int = 0
    max_in_flight: int = 0

    def keep(self, data: bytes) -> str:
        name = f"{uuid.uuid4().hex}.jpeg"
        self.files[name] = data
        while len(self.files) > KEPT_FILES:
            self.files.popitem(last=False)
        return name


def create_emulator_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    app = FastAPI(title="VolcEngine emulator", docs_url=None, redoc_url=None, openapi_url=None)
    state = EmulatorState(
        settings.EMULATOR_LATENCY_MS,
        settings.EMULATOR_DOWNLOAD_LATENCY_MS,
        settings.EMULATOR_LATENCY_JITTER,
    )
    state.faults.extend(f.strip() for f in settings.EMULATOR_FAULTS.split(",") if f.strip())
    app.state.emulator = state
    app.state.faults = state.faults
    keys = {DEMO_ACCESS_KEY: DEMO_SECRET_KEY}
    if settings.VOLC_ACCESS_KEY and settings.VOLC_SECRET_KEY:
        keys[settings.VOLC_ACCESS_KEY.get_secret_value()] = (
            settings.VOLC_SECRET_KEY.get_secret_value()
        )
    app.state.visual = add_visual_routes(app, keys, state.faults)

    @app.post("/api/v3/images/generations")
    async def generations(request: Request) -> Response:
        request_id = uuid.uuid4().hex
        try:
            _check_auth(request)
            body = await _json_body(request)
            state.generation_calls += 1
            plan = _validate(body)
            state.in_flight += 1
            state.max_in_flight = max(state.max_in_flight, state.in_flight)
            try:
                await _delay(request, state, state.latency_ms)
            finally:
                state.in_flight -= 1
            download_fault = _inject_fault(request, state)
        except ArkError as exc:
            state.generation_failures += 1
            return _error(exc, request_id)
        base = str(request.base_url)
        if download_fault == "group_short":
            plan = replace(plan, count=max(1, plan.count - 1))
        if body.get("stream"):
            return StreamingResponse(
                _stream(plan, state, base, download_fault),
                media_type="text/event-stream",
                headers={"X-Request-Id": request_id},
            )
        images = [
            {"error": REFUSED_IN_GROUP}
            if _refused_in_group(plan, i, download_fault)
            else await asyncio.to_thread(_make_image, plan, i, state, base)
            for i in range(plan.count)
        ]
        made = sum(1 for image in images if "error" not in image)
        state.images_generated += made
        _spoil_downloads(images, download_fault, state)
        return JSONResponse(
            {
                "model": plan.model,
                "created": int(time.time()),
                "data": images,
                "usage": _usage(plan, made),
            },
            headers={"X-Request-Id": request_id},
        )

    @app.get("/files/{name}")
    async def files(name: str, request: Request) -> Response:
        await _delay(request, state, state.download_latency_ms)
        data = state.files.get(name)
        if data is None:
            return Response("NoSuchKey", status_code=404, media_type="text/plain")
        state.downloads += 1
        if name in state.truncate_once:  # a transient network fault: the next try is whole
            state.truncate_once.discard(name)
            data = data[: len(data) // 2]
        return Response(data, media_type="image/jpeg")

    @app.get("/_emulator/stats")
    async def stats() -> dict[str, int]:
        return {
            "generation_calls": state.generation_calls,
            "generation_failures": state.generation_failures,
            "images_generated": state.images_generated,
            "downloads": state.downloads,
            "max_in_flight": state.max_in_flight,
        }

    @app.post("/_emulator/faults")
    async def add_faults(request: Request) -> dict[str, list[str]]:
        state.faults.extend((await request.json()).get("faults", []))
        return {"faults": state.faults}

    @app.post("/_emulator/latency")
    async def set_latency(request: Request) -> dict[str, int]:
        """Changes the latency of generations and downloads, in milliseconds, from now on."""
        body = await request.json()
        state.latency_ms = int(body.get("latency_ms", state.latency_ms))
        state.download_latency_ms = int(body.get("download_latency_ms", state.download_latency_ms))
        state.jitter = float(body.get("jitter", state.jitter))
        return {"latency_ms": state.latency_ms, "download_latency_ms": state.download_latency_ms}

    @app.post("/_emulator/reset")
    async def reset() -> dict[str, bool]:
        state.faults.clear()
        state.generation_calls = state.generation_failures = 0
        state.images_generated = state.downloads = 0
        return {"ok": True}

    return app


@dataclass(frozen=True)
class Plan:
    model: str
    width: int
    height: int
    seed: int
    prompt: str
    count: int
    response_format: str
    reference: bytes | None = None


def _check_auth(request: Request) -> None:
    header = request.headers.get("authorization", "")
    key = header.removeprefix("Bearer ").strip() if header.startswith("Bearer ") else ""
    if not key or key == "invalid-key":
        raise ArkError(
            401, "AuthenticationError", "The API key in the request is missing or invalid."
        )


async def _json_body(request: Request) -> dict[str, Any]:
    try:
        body = json.loads(await request.body())
    except ValueError:
        raise ArkError(400, "InvalidParameter", "The request body is not valid JSON.") from None
    if not isinstance(body, dict):
        raise ArkError(400, "InvalidParameter", "The request body must be a JSON object.")
    # The SDK sends every field, unset ones as null: null means "not given".
    return {k: v for k, v in body.items() if v is not None}


def _validate(body: dict[str, Any]) -> Plan:
    for name in ("model", "prompt"):
        if name not in body:
            raise ArkError(
                400, "MissingParameter", f"The request is missing the parameter `{name}`.", name
            )
    model_id = body["model"]
    spec = MODELS.get(model_id)
    if spec is None:
        raise ArkError(
            404,
            "InvalidEndpointOrModel.NotFound",
            f"The model or endpoint {model_id} does not exist or you do not have access to it.",
        )
    prompt = body["prompt"]
    if not isinstance(prompt, str) or not prompt.strip() or len(prompt) > MAX_PROMPT:
        raise _invalid("prompt", f"prompt must be 1–{MAX_PROMPT} characters")
    if spec.needs_image and not body.get("image"):
        raise _invalid("image", "this model edits an image: `image` is required")
    references = _references(spec, body.get("image"))
    width, height = _size(spec, body.get("size"))
    if spec.sizes == "adaptive" and references:
        width, height = _adaptive_size(references[0])
    seed = body.get("seed", -1)
    if not isinstance(seed, int) or not -1 <= seed <= MAX_SEED:
        raise _invalid("seed", f"seed must be an integer in [-1, {MAX_SEED}]")
    scale = body.get("guidance_scale")
    if scale is not None and (not isinstance(scale, int | float) or not 1 <= scale <= 10):
        raise _invalid("guidance_scale", "guidance_scale must be in [1, 10]")
    response_format = body.get("response_format", "url")
    if response_format not in ("url", "b64_json"):
        raise _invalid("response_format", "response_format must be url or b64_json")
    count = 1
    if spec.groups and body.get("sequential_image_generation") == "auto":
        options = body.get("sequential_image_generation_options") or {}
        count = options.get("max_images", 15)
        if not isinstance(count, int) or not 1 <= count <= 15:
            raise _invalid(
                "sequential_image_generation_options.max_images", "max_images must be 1–15"
            )
    if seed == -1:
        seed = random.randint(0, MAX_SEED)
    reference = next((r for r in references if r is not None), None)
    return Plan(model_id, width, height, seed, prompt, count, response_format, reference)


# SeedEdit's `adaptive` size: the preset nearest to the input's aspect ratio.
ADAPTIVE_SIZES = [
    (1024, 1024), (864, 1152), (1152, 864), (1280, 720), (720, 1280),
    (832, 1248), (1248, 832), (1512, 648), (648, 1512), (1536, 512), (512, 1536),
]  # fmt: skip


def _references(spec: ArkModel, value: Any) -> list[bytes | None]:
    if value is None:
        return []
    if spec.max_references == 0:
        raise _invalid("image", "this model does not take reference images")
    items = value if isinstance(value, list) else [value]
    if spec.max_references == 1 and isinstance(value, list):
        raise _invalid("image", "this model takes a single image, not a list")
    if not 1 <= len(items) <= spec.max_references:
        raise _invalid("image", f"give 1–{spec.max_references} images")
    try:
        return [decode_reference(item, *spec.reference_ratio) for item in items]
    except ValueError as exc:
        raise _invalid("image", str(exc)) from None


def _adaptive_size(reference: bytes | None) -> tuple[int, int]:
    if reference is None:
        return ADAPTIVE_SIZES[0]
    width, height = check_picture(reference, 0, float("inf"))
    return min(ADAPTIVE_SIZES, key=lambda size: abs(size[0] / size[1] - width / height))


def _invalid(param: str, message: str) -> ArkError:
    return ArkError(
        400,
        "InvalidParameter",
        f"The parameter `{param}` specified in the request is not valid: {message}.",
        param,
    )


def _size(spec: ArkModel, size: Any) -> tuple[int, int]:
    if size is None:
        return spec.default
    if spec.sizes == "adaptive":
        if size != "adaptive":
            raise _invalid("size", "only `adaptive` is supported")
        return spec.default
    if size in spec.named:
        return NAMED_SIZES[size]
    match = re.fullmatch(r"(\d+)x(\d+)", str(size))
    if not match:
        raise _invalid("size", "size must be WxH or a named resolution")
    width, height = int(match[1]), int(match[2])
    if spec.sizes == "sides":
        if not (
            spec.min_side <= width <= spec.max_side and spec.min_side <= height <= spec.max_side
        ):
            raise _invalid(
                "size", f"width and height must be in [{spec.min_side}, {spec.max_side}]"
            )
    elif not (spec.min_pixels <= width * height <= 4096 * 4096 and 1 / 16 <= width / height <= 16):
        raise _invalid("size", "total pixels or aspect ratio out of range")
    return width, height


async def _delay(request: Request, state: EmulatorState, median_ms: int) -> None:
    """A header's exact latency, or one drawn around the median: real calls vary, with a tail."""
    value = request.headers.get("x-emulator-latency-ms")
    if value and value.isdigit():
        ms = float(value)
    else:
        ms = median_ms * random.lognormvariate(0, state.jitter) if state.jitter else median_ms
    if ms:
        await asyncio.sleep(ms / 1000)


def _inject_fault(request: Request, state: EmulatorState) -> str | None:
    """Raises the chosen fault, or returns a download fault to apply to the answer."""
    kind = request.headers.get("x-emulator-fault") or (
        state.faults.pop(0) if state.faults else None
    )
    if kind is None or kind in DOWNLOAD_FAULTS:
        return kind
    status, code, error_type, headers = FAULTS[kind]
    error = ArkError(status, code, f"Emulated fault: {code}.", kind=error_type)
    error.headers = headers
    raise error


def _spoil_downloads(images: list[dict[str, Any]], fault: str | None, state: EmulatorState) -> None:
    for image in images:
        name = str(image.get("url", "")).rsplit("/", 1)[-1]
        if fault == "expired_url":
            state.files.pop(name, None)
        elif fault == "truncated":
            state.truncate_once.add(name)


def _error(exc: ArkError, request_id: str) -> JSONResponse:
    body = {
        "error": {
            "code": exc.code,
            "message": f"{exc.message} Request ID: {request_id}",
            "param": exc.param,
            "type": exc.kind,
        }
    }
    return JSONResponse(
        body, status_code=exc.status, headers={"X-Request-Id": request_id, **exc.headers}
    )


def _make_image(plan: Plan, index: int, state: EmulatorState, base: str) -> dict[str, Any]:
    data = render_image(
        plan.prompt, plan.seed + index, plan.width, plan.height, reference=plan.reference
    )
    item: dict[str, Any] = {"size": f"{plan.width}x{plan.height}"}
    if plan.response_format == "b64_json":
        item["b64_json"] = base64.b64encode(data).decode("ascii")
    else:
        item["url"] = f"{base}files/{state.keep(data)}"
    return item


def _usage(plan: Plan, made: int) -> dict[str, int]:
    """Only successful images count (and are billed)."""
    tokens = made * plan.width * plan.height // 256
    return {"generated_images": made, "output_tokens": tokens, "total_tokens": tokens}


def _refused_in_group(plan: Plan, index: int, fault: str | None) -> bool:
    return fault == "group_partial" and plan.count > 1 and index == 1


async def _stream(
    plan: Plan, state: EmulatorState, base: str, fault: str | None
) -> AsyncIterator[str]:
    made = 0
    for index in range(plan.count):
        if index:  # each further image of a group takes as long as the first
            await asyncio.sleep(state.latency_ms / 1000)
        event: dict[str, Any] = {
            "model": plan.model,
            "image_index": index,
            "created": int(time.time()),
        }
        if _refused_in_group(plan, index, fault):
            event.update(type="image_generation.partial_failed", error=REFUSED_IN_GROUP)
        else:
            image = await asyncio.to_thread(_make_image, plan, index, state, base)
            event.update(type="image_generation.partial_succeeded", **image)
            made += 1
            state.images_generated += 1
        yield f"data: {json.dumps(event)}\n\n"
        if fault == "stream_cut":
            return
    done = {
        "type": "image_generation.completed",
        "model": plan.model,
        "usage": _usage(plan, made),
        "created": int(time.time()),
    }
    yield f"data: {json.dumps(done)}\n\n"
    yield "data: [DONE]\n\n"
