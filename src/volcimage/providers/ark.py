"""Ark (方舟) image generation through the official `AsyncArk` client."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

import httpx
from volcenginesdkarkruntime import AsyncArk
from volcenginesdkarkruntime._exceptions import (
    ArkAPIConnectionError,
    ArkAPIError,
    ArkAPIStatusError,
    ArkAPITimeoutError,
)
from volcenginesdkarkruntime.types.images.images import SequentialImageGenerationOptions

from volcimage.errors import UpstreamError
from volcimage.providers.base import ImageRequest, UpstreamImage, UpstreamResult

log = logging.getLogger(__name__)

# 429s that will not pass by waiting: the account's quota or spending cap.
FINAL_RATE_CODES = frozenset({"QuotaExceeded", "SetLimitExceeded"})


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

    async def generate(self, request: ImageRequest) -> UpstreamResult:
        async with _classified():
            response = await self._client.images.generate(**self._arguments(request))
        images = [_image_of(item) for item in response.data or []]
        usage = response.usage.model_dump() if response.usage is not None else {}
        request_id = getattr(response, "_request_id", None)
        return UpstreamResult(images=images, request_id=request_id, usage=usage)

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
                    if event.type.endswith("completed"):
                        return
                    yield _image_of(event)
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

    def _arguments(self, request: ImageRequest) -> dict[str, Any]:
        kwargs: dict[str, Any] = {
            "model": request.upstream_model,
            "prompt": request.prompt,
            "size": f"{request.width}x{request.height}",
            "response_format": self._response_format,
            "watermark": request.watermark,
        }
        if request.seed is not None:
            kwargs["seed"] = request.seed
        if request.scale is not None:
            kwargs["guidance_scale"] = request.scale
        if "seedream-4" in request.upstream_model:
            kwargs["sequential_image_generation"] = "disabled"
        if request.reference_images:
            refs = list(request.reference_images)
            kwargs["image"] = refs[0] if len(refs) == 1 else refs
        kwargs.update(request.upstream_params)
        return kwargs

    async def fetch(self, url: str) -> bytes:
        return await fetch_url(self._http, url)

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
    except ArkAPIConnectionError:
        raise UpstreamError(
            "Could not connect to Ark", upstream_code="ConnectionError", retryable=True
        ) from None


def _image_of(item: Any) -> UpstreamImage:
    error = getattr(item, "error", None)
    if isinstance(error, dict):  # stream events leave nested objects as dicts
        return UpstreamImage(error_code=error.get("code"), error_message=error.get("message"))
    if error is not None:
        return UpstreamImage(error_code=error.code, error_message=error.message)
    return UpstreamImage(
        url=getattr(item, "url", None),
        b64_json=getattr(item, "b64_json", None),
        size=getattr(item, "size", None),
    )


def classify_status_error(exc: ArkAPIStatusError) -> UpstreamError:
    code = exc.code or f"HTTP{exc.status_code}"
    message = exc.body.get("message") if isinstance(exc.body, dict) else None
    status = exc.status_code
    retryable = status >= 500 or (status == 429 and code not in FINAL_RATE_CODES)
    retry_after = _retry_after(exc.response.headers.get("retry-after"))
    return UpstreamError(
        f"Ark refused the request ({code}): {message or 'no message'}",
        upstream_code=code,
        retryable=retryable,
        retry_after=retry_after,
        http_status=status,
    )


def _retry_after(value: str | None) -> float | None:
    try:
        return max(0.0, float(value)) if value else None
    except ValueError:
        return None


async def fetch_url(client: httpx.AsyncClient, url: str) -> bytes:
    """Download a result; an expired or missing URL is final (it will not come back)."""
    try:
        response = await client.get(url)
    except httpx.HTTPError as exc:
        raise UpstreamError(
            f"Downloading the result failed: {type(exc).__name__}",
            upstream_code="DownloadFailed",
            retryable=True,
        ) from None
    if response.status_code in (403, 404, 410):
        raise UpstreamError(
            f"The result URL has expired or is gone (HTTP {response.status_code})",
            upstream_code="ResultExpired",
            retryable=False,
            http_status=response.status_code,
        )
    if response.status_code >= 400:
        raise UpstreamError(
            f"Downloading the result failed (HTTP {response.status_code})",
            upstream_code="DownloadFailed",
            retryable=True,
            http_status=response.status_code,
        )
    return response.content
