"""Ark (方舟) image generation through the official `AsyncArk` client."""

from __future__ import annotations

import contextlib
import email.utils
import json
import logging
import math
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import httpx
from pydantic import BaseModel
from volcenginesdkarkruntime import AsyncArk
from volcenginesdkarkruntime._exceptions import (
    ArkAPIConnectionError,
    ArkAPIError,
    ArkAPIStatusError,
    ArkAPITimeoutError,
)
from volcenginesdkarkruntime.types.images.images import (
    ContentGenerationTool,
    OptimizePromptOptions,
    SequentialImageGenerationOptions,
)

from volcimage.core.errors import UpstreamError
from volcimage.providers.base import (
    RETRY_AFTER_CAP,
    ImageRequest,
    UpstreamImage,
    UpstreamResult,
    malformed,
)
from volcimage.providers.download import checked_inline, fetch_url
from volcimage.providers.policy import ark, retry_fields

log = logging.getLogger(__name__)


class ArkProvider:
    name = "ark"

    def __init__(
        self,
        *,
        api_key: str,
        base_url: str,
        timeout: float,
        response_format: str = "url",
        http_client: httpx.AsyncClient | None = None,
    ) -> None:
        self._http = http_client or httpx.AsyncClient(timeout=timeout)
        # max_retries=0: a retried image call is a new, billed generation; the queue decides.
        self._client = AsyncArk(
            api_key=api_key,
            base_url=base_url,
            timeout=timeout,
            max_retries=0,
            http_client=self._http,
        )
        self._response_format = response_format
        self._timeout = timeout

    async def generate(self, request: ImageRequest) -> UpstreamResult:
        async with _classified():
            response = await self._client.images.generate(**self._arguments(request))
        return _result_of(response)

    async def probe(self, upstream_model: str) -> str:
        """A 1x1 image, which no model makes: Ark checks the key first and refuses the size."""
        try:
            async with _classified():
                await self._client.images.generate(
                    model=upstream_model, prompt="volcimage doctor", size="1x1"
                )
        except UpstreamError as exc:
            if exc.http_status in (401, 403):
                raise
            if exc.http_status == 404:
                return f"key accepted; {upstream_model} is not open to it ({exc.upstream_code})"
            return f"key accepted ({exc.upstream_code} for a 1x1 image, as intended)"
        return "key accepted, but Ark made (and billed) an image of 1x1 pixels"

    async def stream(self, request: ImageRequest) -> AsyncIterator[UpstreamImage]:
        """A Seedream 4.x group, streamed: each image as soon as Ark has it."""
        arguments = {
            **self._arguments(request),
            "sequential_image_generation": "auto",
            "sequential_image_generation_options": SequentialImageGenerationOptions(
                max_images=request.group_size
            ),
            "stream": True,
        }
        async with _classified():
            events = await self._client.images.generate(**arguments)
            try:
                async for event in events:
                    kind = getattr(event, "type", None)
                    if not isinstance(kind, str):
                        raise malformed("Ark", "a stream event without a `type`")
                    if kind.endswith("completed"):
                        return
                    yield _image_of(event, "a stream event")
            except ArkAPIError as exc:
                if isinstance(exc, ArkAPIStatusError):
                    raise
                # The official client ends a stream at the first refused image of a group
                # (an event with `error`): record the refusal; the images before it are kept.
                body = exc.body if isinstance(exc.body, dict) else {}
                yield UpstreamImage(
                    error_code=str(body.get("code") or "StreamError"),
                    error_message=str(body.get("message") or exc.message),
                )
                return
        raise UpstreamError(
            "Ark's stream ended before its `completed` event",
            upstream_code="StreamCutOff",
            retryable=True,
        )

    def _arguments(self, request: ImageRequest) -> dict[str, Any]:
        kwargs: dict[str, Any] = {
            "model": request.upstream_model,
            "prompt": request.prompt,
            "size": f"{request.width}x{request.height}",
            "response_format": self._response_format,
            "watermark": request.watermark,
        }
        if request.timeout is not None:  # the model's time, not the client's
            kwargs["timeout"] = request.timeout
        if request.seed is not None:
            kwargs["seed"] = request.seed
        if request.scale is not None:
            kwargs["guidance_scale"] = request.scale
        if "seedream-4" in request.upstream_model:
            kwargs["sequential_image_generation"] = "disabled"
        if request.reference_images:
            refs = list(request.reference_images)
            kwargs["image"] = refs[0] if len(refs) == 1 else refs
        if request.output_format:
            kwargs["output_format"] = request.output_format
        if request.optimize_prompt:
            kwargs["optimize_prompt_options"] = OptimizePromptOptions(mode=request.optimize_prompt)
        if request.web_search:
            kwargs["tools"] = [ContentGenerationTool(type="web_search")]
        if request.layer_decomposition:
            kwargs["layer_decomposition"] = True
        if request.background:  # Seedream 5.0 pro/flash; the client has no argument for it
            kwargs["extra_body"] = {"background": request.background}
        kwargs.update(request.upstream_params)
        return kwargs

    async def fetch(self, url: str) -> bytes:
        return await fetch_url(self._http, url, self._timeout)

    async def aclose(self) -> None:
        await self._http.aclose()


@contextlib.asynccontextmanager
async def _classified() -> AsyncIterator[None]:
    """The client's exceptions as UpstreamError, retryable or final."""
    try:
        yield
    except ArkAPIStatusError as exc:
        raise classify_status_error(exc) from None
    except ArkAPITimeoutError:
        raise UpstreamError(
            "Ark did not answer in time", upstream_code="Timeout", retryable=True
        ) from None
    except (ArkAPIConnectionError, httpx.HTTPError):  # a stream read fails unwrapped
        raise UpstreamError(
            "Could not connect to Ark", upstream_code="ConnectionError", retryable=True
        ) from None
    except json.JSONDecodeError:
        raise malformed("Ark", "the answer is not JSON") from None


def _result_of(response: object) -> UpstreamResult:
    """The images of an answer, whose shape is checked: the client hands back what came."""
    if not isinstance(response, BaseModel):  # text or a list, as it came
        raise malformed("Ark", "the answer is not a JSON object")
    data = getattr(response, "data", None)
    if not data:
        shown = "missing or null" if data is None else "empty"
        raise UpstreamError(
            f"Ark answered without any image (`data` is {shown})",
            upstream_code="NoImage",
            retryable=False,
        )
    if not isinstance(data, list):
        raise malformed("Ark", "`data` is not a list")
    images = [_image_of(item, f"`data[{i}]`") for i, item in enumerate(data)]
    usage = getattr(response, "usage", None)
    return UpstreamResult(
        images=images,
        request_id=getattr(response, "_request_id", None),
        usage=usage.model_dump() if isinstance(usage, BaseModel) else {},
    )


def _image_of(item: Any, where: str) -> UpstreamImage:
    error = getattr(item, "error", None)
    if error is not None:
        # stream events leave nested objects as dicts; a bare value is taken as the message
        fields = error if isinstance(error, dict) else getattr(error, "__dict__", None)
        fields = fields if isinstance(fields, dict) else {"message": error}
        return UpstreamImage(
            error_code=str(fields.get("code") or "ImageRefused"),
            error_message=str(fields.get("message") or "no message"),
        )
    url, b64, size = (getattr(item, name, None) for name in ("url", "b64_json", "size"))
    size = str(size) if size else None
    if isinstance(b64, str) and b64:
        return UpstreamImage(b64_json=checked_inline("Ark", b64), size=size)
    if isinstance(url, str) and url.startswith(("https://", "http://")):
        return UpstreamImage(url=url, size=size)
    raise malformed("Ark", f"{where} has neither an image URL nor base64 data")


def classify_status_error(exc: ArkAPIStatusError) -> UpstreamError:
    code = str(exc.code or f"HTTP{exc.status_code}")
    message = exc.body.get("message") if isinstance(exc.body, dict) else None
    status = exc.status_code
    text = f"Ark refused the request ({code}): {message or 'no message'}"
    asked = retry_after_seconds(exc.response.headers.get("retry-after"))
    if asked is not None and asked > RETRY_AFTER_CAP:
        text += f" (Retry-After asked for {asked:g} s; waiting at most {RETRY_AFTER_CAP:g} s)"
    return UpstreamError(
        text,
        upstream_code=code,
        retry_after=None if asked is None else min(asked, RETRY_AFTER_CAP),
        http_status=status,
        **retry_fields(ark(code, status)),
    )


def retry_after_seconds(value: str | None) -> float | None:
    """A Retry-After header's seconds (a number or an HTTP date, RFC 9110), or None."""
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        when = when if when.tzinfo else when.replace(tzinfo=UTC)
        seconds = (when - datetime.now(UTC)).total_seconds()
    return None if math.isnan(seconds) else max(0.0, seconds)
