"""The emulator's Visual API: signature V4 verification, asynchronous jobs and CVProcess.

Facts followed are those of `volcengine-api.md` §2; tests name the fact they check. The limits
a model enforces (sizes, prompt length, scale, steps, input images, which action serves it) are
the catalog's. The signature is verified here from the documented algorithm, not with the SDK's
own helpers, so a client bug cannot hide behind a verifier with the same bug.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import random
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, quote

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse

from volcimage.catalog.models import ModelInfo, load_catalog
from volcimage.emulator.references import check_picture
from volcimage.emulator.render import render_image
from volcimage.emulator.tools import output_size as tool_output

REGION = "cn-north-1"
SERVICE = "cv"
VERSION = "2022-08-31"
MAX_CLOCK_SKEW = 15 * 60
JOB_LIFETIME = 12 * 3600  # jobs are kept 12 h, then not_found
MAX_SEED = 2147483647
# The key pair demo mode signs with; the emulator also accepts the one in settings, if any.
DEMO_ACCESS_KEY = "AKLTvolcimagedemo"
DEMO_SECRET_KEY = "volcimage-demo-secret"  # noqa: S105 - public by design

# What the upstream asks beyond the catalog's limits: general 2.0 answers only for its version.
REQUIRED = {"high_aes_general_v20_L": {"model_version": "general_v2.0_L"}}
REFERENCE_RATIO = (1 / 3, 3)  # input images of every model
DEFAULT_RATIO = (1 / 3, 3)  # output aspect ratios unless min_ratio/max_ratio widen them
RATIO_RANGE = (1 / 16, 16)  # where min_ratio/max_ratio may be set: [1/16, 16)

# Fault → (HTTP status, code, message); `output_sensitive` and `expired` spoil the result.
FAULTS: dict[str, tuple[int, int, str]] = {
    "rate_limit": (429, 50429, "Request Has Reached API Limit, Please Try Later"),
    "concurrency": (429, 50430, "Request Has Reached API Concurrent Limit, Please Try Later"),
    "server_error": (500, 50500, "Internal Error"),
    "sensitive": (400, 50412, "Text Risk Not Pass"),
}
RESULT_FAULTS = ("output_sensitive", "expired")
POLL_OPTIONS = {"return_url", "logo_info", "aigc_meta"}  # a poll's req_json: how results show
GENERATIONS = ("CVSync2AsyncSubmitTask", "CVProcess")  # what the concurrency limit counts


class VisualError(Exception):
    def __init__(self, status: int, code: int, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


class AuthError(Exception):
    def __init__(self, code: str, message: str, status: int = 401) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


@dataclass
class Job:
    req_key: str
    prompt: str
    width: int
    height: int
    seed: int
    created: float
    fault: str | None
    asynchronous: bool  # served by SubmitTask/GetResult, or else by CVProcess
    reference: bytes | None = None
    images: list[str] | None = None


@dataclass
class VisualState:
    keys: dict[str, str]
    jobs: dict[str, Job] = field(default_factory=dict)
    submits: int = 0
    polls: int = 0
    processes: int = 0
    images_generated: int = 0


def add_visual_routes(app: FastAPI, keys: dict[str, str], faults: list[str]) -> VisualState:
    """Serves the Visual API at POST /visual?Action=…&Version=2022-08-31."""
    state = VisualState(keys)
    emulator = app.state.emulator

    @app.post("/visual")
    async def visual(request: Request) -> Response:
        request_id = uuid.uuid4().hex
        action = request.query_params.get("Action", "")
        body_bytes = await request.body()
        try:
            verify_signature(request, body_bytes, state.keys, time.time())
        except AuthError as exc:
            return _auth_error(exc, request_id, action)
        try:
            body = _json(body_bytes)
            queued = faults.pop(0) if faults and action != "CVSync2AsyncGetResult" else None
            fault = request.headers.get("x-emulator-fault") or queued  # polls cost nothing
            latency, limits = emulator.visual_latency_ms, emulator.limits
            if action in GENERATIONS and not limits.admit_visual(state.jobs.values(), latency):
                raise VisualError(*FAULTS["concurrency"])
            if action == "CVSync2AsyncSubmitTask":
                data = await _submit(state, body, fault)
            elif action == "CVSync2AsyncGetResult":
                data = await _get_result(state, body, latency)
            elif action == "CVProcess":
                with limits.processing():
                    data = await _process(state, body, fault, latency)
            else:
                raise VisualError(400, 50400, f"Unknown Action {action!r}")
        except VisualError as exc:
            return JSONResponse(
                {"code": exc.code, "message": exc.message, "request_id": request_id, "data": None},
                status_code=exc.status,
            )
        if fault == "malformed":
            return Response("<html>502 Bad Gateway</html>", media_type="text/html")
        return JSONResponse(
            {
                "code": 10000,
                "message": "Success",
                "request_id": request_id,
                "time_elapsed": "1.0s",
                "data": data,
            }
        )

    @app.get("/_emulator/visual/stats")
    async def visual_stats() -> dict[str, int]:
        return {
            "submits": state.submits,
            "polls": state.polls,
            "processes": state.processes,
            "images_generated": state.images_generated,
        }

    return state


# ---- signature V4 ---------------------------------------------------------------------------


def verify_signature(request: Request, body: bytes, keys: dict[str, str], now: float) -> None:
    """Raises AuthError unless the request carries a valid V4 signature for cn-north-1/cv."""
    authorization = request.headers.get("authorization")
    x_date = request.headers.get("x-date")
    if not authorization or not x_date:
        raise AuthError("MissingAuthenticationToken", "Request is missing Authentication Token")
    try:
        algorithm, rest = authorization.split(" ", 1)
        parts = dict(item.strip().split("=", 1) for item in rest.split(","))
        access_key, date, region, service, terminator = parts["Credential"].split("/")
        signed_headers = parts["SignedHeaders"].split(";")
        signature = parts["Signature"]
    except (ValueError, KeyError):
        raise AuthError("InvalidAuthorization", "Authorization header is malformed") from None
    if algorithm != "HMAC-SHA256" or terminator != "request":
        raise AuthError("InvalidAuthorization", "Authorization header is malformed")
    secret = keys.get(access_key)
    if secret is None:
        raise AuthError("InvalidAccessKey", "Access key is not valid")
    try:
        signed_at = datetime.strptime(x_date, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC).timestamp()
    except ValueError:
        raise AuthError("InvalidTimestamp", "X-Date is not YYYYMMDDTHHMMSSZ") from None
    if abs(now - signed_at) > MAX_CLOCK_SKEW or date != x_date[:8]:
        raise AuthError("InvalidTimestamp", "X-Date is more than 15 minutes off")
    if region != REGION or service != SERVICE:
        raise AuthError(
            "SignatureDoesNotMatch", f"Credential scope must be {REGION}/{SERVICE}", 403
        )
    body_hash = hashlib.sha256(body).hexdigest()
    if request.headers.get("x-content-sha256", body_hash) != body_hash:
        raise AuthError("SignatureDoesNotMatch", "X-Content-Sha256 does not match the body", 403)
    missing = [h for h in signed_headers if h not in request.headers]
    if missing or "x-date" not in signed_headers:
        raise AuthError("SignatureDoesNotMatch", "A signed header is missing", 403)
    canonical = "\n".join(
        [
            request.method,
            request.url.path or "/",
            _canonical_query(request.url.query),
            "".join(f"{h}:{_header_value(request, h)}\n" for h in signed_headers),
            ";".join(signed_headers),
            body_hash,
        ]
    )
    scope = f"{date}/{region}/{service}/request"
    to_sign = "\n".join([algorithm, x_date, scope, hashlib.sha256(canonical.encode()).hexdigest()])
    key = secret.encode()
    for part in (date, region, service, "request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    expected = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, signature):
        raise AuthError("SignatureDoesNotMatch", "The request signature does not match", 403)


def _canonical_query(query: str) -> str:
    pairs = sorted(parse_qsl(query, keep_blank_values=True))
    return "&".join(f"{quote(k, safe='-_.~')}={quote(v, safe='-_.~')}" for k, v in pairs)


def _header_value(request: Request, name: str) -> str:
    value = request.headers[name]
    if name == "host" and value.endswith((":80", ":443")):
        value = value.rsplit(":", 1)[0]
    return value


def _auth_error(exc: AuthError, request_id: str, action: str) -> JSONResponse:
    return JSONResponse(
        {
            "ResponseMetadata": {
                "RequestId": request_id,
                "Action": action,
                "Version": VERSION,
                "Service": SERVICE,
                "Region": REGION,
                "Error": {"CodeN": 100009, "Code": exc.code, "Message": exc.message},
            }
        },
        status_code=exc.status,
    )


# ---- actions --------------------------------------------------------------------------------


def _json(body: bytes) -> dict[str, Any]:
    try:
        value = json.loads(body)
    except ValueError:
        raise VisualError(400, 50400, "Invalid Request: body is not JSON") from None
    if not isinstance(value, dict):
        raise VisualError(400, 50400, "Invalid Request: body must be a JSON object")
    return value


def _invalid(message: str) -> VisualError:
    return VisualError(400, 50400, f"Invalid Params: {message}")


def _job(body: dict[str, Any], fault: str | None) -> Job:
    req_key = body.get("req_key")
    model = load_catalog().upstream("visual", str(req_key))
    if model is None:
        raise _invalid(f"req_key {req_key!r} is not supported")
    if fault in FAULTS:
        status, code, message = FAULTS[fault]
        raise VisualError(status, code, message)
    prompt = body.get("prompt", "")
    most = model.max_prompt_length
    blank = not isinstance(prompt, str) or not prompt.strip()
    if not isinstance(prompt, str) or (blank and model.prompt_required) or len(prompt) > most:
        raise _invalid(f"prompt must be 1–{most} characters")
    for name, value in REQUIRED.get(model.upstream_id, {}).items():
        if body.get(name) != value:
            raise _invalid(f"{name} must be {value!r}")
    pictures = _inputs(model, body.get("binary_data_base64"))
    width, height = _size(model, body, pictures)
    if "seed" in body and "seed" not in model.params:
        raise _invalid(f"seed is not supported by {req_key}")
    seed = body.get("seed", -1)
    if not isinstance(seed, int) or not -1 <= seed <= MAX_SEED:
        raise _invalid(f"seed must be an integer in [-1, {MAX_SEED}]")
    for param, bounds in (("scale", model.scale), ("ddim_steps", model.steps)):
        given = body.get(param)
        if given is None:
            continue
        if bounds is None:
            raise _invalid(f"{param} is not supported by {req_key}")
        kind = int if bounds.integer else int | float
        if not isinstance(given, kind) or not bounds.min <= given <= bounds.max:
            whole = "an integer " if bounds.integer else ""
            raise _invalid(f"{param} must be {whole}in [{bounds.min:g}, {bounds.max:g}]")
    if "use_pre_llm" in body and (
        "use_pre_llm" not in model.params or not isinstance(body["use_pre_llm"], bool)
    ):
        raise _invalid(f"use_pre_llm is not supported by {req_key} or is not a boolean")
    if seed == -1:
        seed = random.randint(0, MAX_SEED)
    spoil = fault if fault in RESULT_FAULTS else None
    return Job(
        str(req_key),
        prompt,
        width,
        height,
        seed,
        time.monotonic(),
        spoil,
        model.asynchronous,
        pictures[0] if pictures else None,
    )


def _size(model: ModelInfo, body: dict[str, Any], pictures: list[bytes]) -> tuple[int, int]:
    """What the job makes: a tool's size follows its source; else width and height, within
    the model's rule and the aspect ratios asked for (1/3–3 unless min_ratio/max_ratio)."""
    if model.size_rule.mode == "adaptive":
        if "width" in body or "height" in body:
            raise _invalid(f"{model.upstream_id} takes no width or height")
        try:
            return tool_output(model, body, pictures)
        except ValueError as exc:
            raise _invalid(str(exc)) from None
    if model.takes_source and len(pictures) != 1:
        raise _invalid(f"{model.upstream_id} takes one source image")
    default_w, default_h = model.default_dimensions
    width, height = body.get("width", default_w), body.get("height", default_h)
    if not isinstance(width, int) or not isinstance(height, int):
        raise _invalid("width and height must be integers")
    problem = model.size_rule.check(width, height)
    if problem:
        raise _invalid(problem)
    low, high = body.get("min_ratio", DEFAULT_RATIO[0]), body.get("max_ratio", DEFAULT_RATIO[1])
    for name, value in (("min_ratio", low), ("max_ratio", high)):
        if not isinstance(value, int | float) or not RATIO_RANGE[0] <= value < RATIO_RANGE[1]:
            raise _invalid(f"{name} must be in [1/16, 16)")
    if not low <= width / height <= high:
        raise _invalid(
            f"width / height must be within [min_ratio, max_ratio] = [{low:g}, {high:g}]"
        )
    return width, height


def _inputs(model: ModelInfo, value: Any) -> list[bytes]:
    """The input images (`binary_data_base64`), each checked against the model's limits."""
    if not value:
        if model.takes_source:
            raise _invalid(f"{model.upstream_id} needs binary_data_base64 (the source image)")
        return []
    most = (
        (2 if model.kind == "inpaint" else 1) if model.takes_source else model.max_reference_images
    )
    if not most:
        raise _invalid(f"{model.upstream_id} takes no input images")
    if not isinstance(value, list) or len(value) > most:
        raise _invalid(f"binary_data_base64 takes at most {most} images")
    pictures = []
    for item in value:
        try:
            data = base64.b64decode(str(item), validate=True)
            check_picture(data, *REFERENCE_RATIO, model.inputs.max_bytes, model.inputs.max_side)
        except ValueError as exc:
            raise _invalid(f"binary_data_base64: {exc}") from None
        pictures.append(data)
    return pictures


def _check_req_json(value: Any) -> None:
    """A poll's `req_json`: a JSON object in a string, of what shows on the result."""
    try:
        shown = json.loads(value) if isinstance(value, str) else None
    except ValueError:
        shown = None
    if not isinstance(shown, dict):
        raise _invalid("req_json must be a string holding a JSON object")
    unknown = set(shown) - POLL_OPTIONS
    if unknown:
        raise _invalid(f"req_json takes {sorted(POLL_OPTIONS)}, not {sorted(unknown)}")


def _render(state: VisualState, job: Job) -> list[str]:
    if job.images is None:
        picture = render_image(
            job.prompt, job.seed, job.width, job.height, fmt="png", reference=job.reference
        )
        job.images = [base64.b64encode(picture).decode()]
        state.images_generated += 1
    return job.images


async def _submit(state: VisualState, body: dict[str, Any], fault: str | None) -> dict[str, Any]:
    job = _job(body, fault)
    if not job.asynchronous:
        raise _invalid(f"{job.req_key} is served by CVProcess, not as an asynchronous job")
    state.submits += 1
    job_id = uuid.uuid4().hex[:20]
    state.jobs[job_id] = job
    return {"task_id": job_id}


async def _get_result(state: VisualState, body: dict[str, Any], latency_ms: int) -> dict[str, Any]:
    state.polls += 1
    _check_req_json(body.get("req_json", "{}"))
    job = state.jobs.get(str(body.get("task_id")))
    if job is None or job.req_key != body.get("req_key"):
        return {"status": "not_found", "binary_data_base64": [], "image_urls": None}
    age = time.monotonic() - job.created
    if age > JOB_LIFETIME:
        del state.jobs[str(body["task_id"])]
        return {"status": "not_found", "binary_data_base64": [], "image_urls": None}
    if age * 1000 < latency_ms / 2:
        return {"status": "in_queue", "binary_data_base64": [], "image_urls": None}
    if age * 1000 < latency_ms:
        return {"status": "generating", "binary_data_base64": [], "image_urls": None}
    if job.fault == "expired":
        return {"status": "expired", "binary_data_base64": [], "image_urls": None}
    if job.fault == "output_sensitive":
        raise VisualError(400, 50511, "Post Img Risk Not Pass")
    images = await asyncio.to_thread(_render, state, job)
    return {"status": "done", "binary_data_base64": images, "image_urls": None}


async def _process(
    state: VisualState, body: dict[str, Any], fault: str | None, latency_ms: int
) -> dict[str, Any]:
    job = _job(body, fault)
    if job.asynchronous:
        raise _invalid(f"{job.req_key} runs as an asynchronous job (CVSync2AsyncSubmitTask)")
    state.processes += 1
    await asyncio.sleep(latency_ms / 1000)
    if job.fault == "output_sensitive":
        raise VisualError(400, 50511, "Post Img Risk Not Pass")
    return {"binary_data_base64": await asyncio.to_thread(_render, state, job), "image_urls": None}
