"""Ark's image generation API, faithful enough for the official SDK.

Facts followed are those of `volcengine-api.md` §1; tests name the fact they check. The limits
a model enforces (sizes, prompt length, reference images, groups, guidance scale) are the
catalog's; what is here is what only the upstream does (named sizes, reference aspect ratios,
SeedEdit's adaptive presets, its error bodies). Not part of the real API: the per-request header
`X-Emulator-Fault`.
"""

from __future__ import annotations

import asyncio
import base64
import json
import math
import random
import re
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse

from volcimage.catalog.models import ModelInfo, load_catalog
from volcimage.emulator.controls import EmulatorState, delay
from volcimage.emulator.references import check_picture, decode_reference
from volcimage.emulator.render import render_image
from volcimage.emulator.seedream import seedream_options

MAX_SEED = 2147483647
GUIDANCE_SCALE = (1, 10)  # the API's range; models the catalog gives no scale (4.x) ignore it
NAMED_SIZES = {
    "1K": (1024, 1024),
    "1.5K": (1536, 1536),
    "2K": (2048, 2048),
    "3K": (3072, 3072),
    "4K": (4096, 4096),
}


@dataclass(frozen=True)
class Upstream:
    """What a model does beyond the catalog's limits."""

    named: tuple[str, ...] = ()  # resolutions accepted by name as `size`
    reference_ratio: tuple[float, float] = (1 / 16, 16)


UPSTREAM = {
    "doubao-seededit-3-0-i2i-250628": Upstream(reference_ratio=(1 / 3, 3)),
    "doubao-seedream-4-0-250828": Upstream(named=("1K", "2K", "4K")),
    "doubao-seedream-4-5-251128": Upstream(named=("2K", "4K")),
    "doubao-seedream-5-0-260128": Upstream(named=("2K", "3K", "4K")),
    "doubao-seedream-5-0-pro-260628": Upstream(named=("1K", "1.5K", "2K")),
    "doubao-seedream-5-0-flash-260915": Upstream(named=("1K", "1.5K", "2K")),
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
    "input_sensitive": (400, "InputTextSensitiveContentDetected", "BadRequest", {}),
    "quota": (429, "QuotaExceeded", "TooManyRequests", {}),
    "auth": (401, "AuthenticationError", "Unauthorized", {}),
    # a model the account has not activated, or one retired for new accounts
    "model_not_open": (404, "ModelNotOpen", "NotFound", {}),
}
# Faults that let the generation succeed and spoil its answer or the download of its result.
DOWNLOAD_FAULTS = ("expired_url", "truncated", "group_partial", "group_short", "stream_cut")
# group_partial: the second image of a group fails the content check; the rest go on (the docs)
# group_short: the group ends, normally, one image short of max_images (the model decides)
# stream_cut: a group's stream stops after its first image, without its `completed` event
IPM_REFUSAL = "images per minute (IPM) of this account are used up; try again later."
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


def add_ark_routes(app: FastAPI, state: EmulatorState) -> None:
    """Serves POST /api/v3/images/generations and the result files it links to."""

    @app.post("/api/v3/images/generations")
    async def generations(request: Request) -> Response:
        request_id = uuid.uuid4().hex
        try:
            _check_auth(request)
            body = await _json_body(request)
            state.generation_calls += 1
            plan = _validate(body)
            if (wait := state.limits.ark_wait(plan.model, plan.count)) is not None:
                raise _fault("rate_limit", f"the model's {IPM_REFUSAL}", math.ceil(wait))
            state.in_flight += 1
            state.max_in_flight = max(state.max_in_flight, state.in_flight)
            try:
                await delay(request, state, state.latency_ms)
            finally:
                state.in_flight -= 1
            download_fault = _inject_fault(request, state, plan.model)
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
        await delay(request, state, state.download_latency_ms)
        data = state.files.get(name)
        if data is None:
            return Response("NoSuchKey", status_code=404, media_type="text/plain")
        state.downloads += 1
        if name in state.truncate_once:  # a transient network fault: the next try is whole
            state.truncate_once.discard(name)
            data = data[: len(data) // 2]
        return Response(data, media_type="image/jpeg")


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
    output_format: str = "jpeg"
    transparent: bool = False
    web_search: bool = False
    layered: bool = False  # a layer decomposition: the base image, then its layers


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
    model = load_catalog().upstream("ark", str(model_id))
    if model is None:
        raise ArkError(
            404,
            "InvalidEndpointOrModel.NotFound",
            f"The model or endpoint {model_id} does not exist or you do not have access to it.",
        )
    upstream = UPSTREAM.get(model.upstream_id, Upstream())
    prompt = body["prompt"]
    most = model.max_prompt_length
    if not isinstance(prompt, str) or not prompt.strip() or len(prompt) > most:
        raise _invalid("prompt", f"prompt must be 1–{most} characters")
    if model.min_reference_images and not body.get("image"):
        raise _invalid("image", "this model edits an image: `image` is required")
    references = _references(model, upstream, body.get("image"))
    width, height = _size(model, upstream, body.get("size"))
    if model.size_rule.mode == "adaptive" and references:
        width, height = _adaptive_size(references[0])
    seed = body.get("seed", -1)
    if not isinstance(seed, int) or not -1 <= seed <= MAX_SEED:
        raise _invalid("seed", f"seed must be an integer in [-1, {MAX_SEED}]")
    scale = body.get("guidance_scale")
    low, high = (model.scale.min, model.scale.max) if model.scale else GUIDANCE_SCALE
    if scale is not None and (not isinstance(scale, int | float) or not low <= scale <= high):
        raise _invalid("guidance_scale", f"guidance_scale must be in [{low:g}, {high:g}]")
    response_format = body.get("response_format", "url")
    if response_format not in ("url", "b64_json"):
        raise _invalid("response_format", "response_format must be url or b64_json")
    count = 1
    group = model.max_group_images
    if group and body.get("sequential_image_generation") == "auto":
        options = body.get("sequential_image_generation_options") or {}
        count = options.get("max_images", group)
        if not isinstance(count, int) or not 1 <= count <= group:
            raise _invalid(
                "sequential_image_generation_options.max_images", f"max_images must be 1–{group}"
            )
    if seed == -1:
        seed = random.randint(0, MAX_SEED)
    if body.get("layer_decomposition"):
        if "layer_decomposition" not in model.params or count > 1:
            raise _invalid("layer_decomposition", f"{model.upstream_id} makes no layers here")
        count = 1 + 2 + seed % 5  # a base image and the layers the model finds (2–6 here)
    reference = next((r for r in references if r is not None), None)
    options = seedream_options(model, body, _invalid)
    return Plan(
        str(model_id), width, height, seed, prompt, count, response_format, reference, **options
    )


# SeedEdit's `adaptive` size: the preset nearest to the input's aspect ratio.
ADAPTIVE_SIZES = [
    (1024, 1024), (864, 1152), (1152, 864), (1280, 720), (720, 1280),
    (832, 1248), (1248, 832), (1512, 648), (648, 1512), (1536, 512), (512, 1536),
]  # fmt: skip


def _references(model: ModelInfo, upstream: Upstream, value: Any) -> list[bytes | None]:
    if value is None:
        return []
    most = model.max_reference_images
    if most == 0:
        raise _invalid("image", "this model does not take reference images")
    items = value if isinstance(value, list) else [value]
    if most == 1 and isinstance(value, list):
        raise _invalid("image", "this model takes a single image, not a list")
    if not 1 <= len(items) <= most:
        raise _invalid("image", f"give 1–{most} images")
    try:
        return [
            decode_reference(item, *upstream.reference_ratio, model.inputs.max_bytes)
            for item in items
        ]
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


def _size(model: ModelInfo, upstream: Upstream, size: Any) -> tuple[int, int]:
    if size is None:
        return model.default_dimensions
    if model.size_rule.mode == "adaptive":
        if size != "adaptive":
            raise _invalid("size", "only `adaptive` is supported")
        return model.default_dimensions
    if size in upstream.named:
        return NAMED_SIZES[size]
    match = re.fullmatch(r"(\d+)x(\d+)", str(size))
    if not match:
        raise _invalid("size", "size must be WxH or a named resolution")
    width, height = int(match[1]), int(match[2])
    problem = model.size_rule.check(width, height)
    if problem:
        raise _invalid("size", problem)
    return width, height


def _inject_fault(request: Request, state: EmulatorState, model: str) -> str | None:
    """Raises the chosen fault, or returns a download fault to apply to the answer."""
    kind = request.headers.get("x-emulator-fault") or (
        state.faults.pop(0) if state.faults else None
    )
    if kind is None or kind in DOWNLOAD_FAULTS:
        return kind
    message = (
        f"Your account has not activated the model {model}. Activate it in the Ark console."
        if kind == "model_not_open"
        else f"Emulated fault: {FAULTS[kind][1]}."
    )
    raise _fault(kind, message)


def _fault(kind: str, message: str, retry_after: int | None = None) -> ArkError:
    status, code, error_type, headers = FAULTS[kind]
    error = ArkError(status, code, message, kind=error_type)
    error.headers = headers if retry_after is None else {"Retry-After": str(retry_after)}
    return error


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
    layer = plan.layered and index > 0  # a layer of a decomposition: a PNG with alpha
    data = render_image(
        plan.prompt,
        plan.seed + index,
        plan.width,
        plan.height,
        fmt="png" if layer else plan.output_format,
        reference=plan.reference,
        transparent=plan.transparent or layer,
    )
    item: dict[str, Any] = {"size": f"{plan.width}x{plan.height}"}
    if plan.response_format == "b64_json":
        item["b64_json"] = base64.b64encode(data).decode("ascii")
    else:
        item["url"] = f"{base}files/{state.keep(data)}"
    return item


def _usage(plan: Plan, made: int) -> dict[str, Any]:
    """Only successful images count (and are billed); a web search is counted apart."""
    tokens = made * plan.width * plan.height // 256
    usage: dict[str, Any] = {
        "generated_images": made,
        "output_tokens": tokens,
        "total_tokens": tokens,
    }
    if plan.web_search:
        usage["tool_usage"] = {"web_search": 1}
    return usage


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
