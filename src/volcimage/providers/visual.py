"""The Visual (智能视觉) API: Jimeng and general models, signed with the official `SignerV4`.

Asynchronous models go through CVSync2AsyncSubmitTask + CVSync2AsyncGetResult; a few general
models answer at once through CVProcess. Requests are signed by the SDK core's signer
(`volcenginesdkcore`, which the Ark client already brings) and sent with httpx, so calls stay
async.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlencode

import httpx
from volcenginesdkcore.signv4 import SignerV4

from volcimage.core.errors import UpstreamError
from volcimage.providers.base import ImageRequest, UpstreamImage, UpstreamResult, malformed
from volcimage.providers.download import checked_inline, fetch_url
from volcimage.providers.policy import VISUAL_LIMITS, retry_fields, visual

VERSION = "2022-08-31"
SUCCESS = 10000
RUNNING = ("in_queue", "generating")
PROBE_JOB = "volcimage-doctor"  # no such job: `volcimage doctor` polls it
DEFAULT_RATIO = (1 / 3, 3)  # the aspect ratios Jimeng takes unless min_ratio/max_ratio say more


class VisualProvider:
    name = "visual"

    def __init__(
        self,
        *,
        access_key: str,
        secret_key: str,
        base_url: str,
        region: str,
        service: str,
        timeout: float,
        http_client: httpx.AsyncClient | None = None,
    ) -> None:
        self._http = http_client or httpx.AsyncClient(timeout=timeout)
        self._url = httpx.URL(base_url)
        self._keys = (access_key, secret_key, region, service)
        self._timeout = timeout

    async def generate(self, request: ImageRequest) -> UpstreamResult:
        """One synchronous call (CVProcess)."""
        body = self._body(request)
        if request.watermark:
            body["logo_info"] = {"add_logo": True}
        answer = await self._call("CVProcess", body, seconds=request.timeout)
        return _images(answer)

    async def submit(self, request: ImageRequest) -> str:
        body = self._body(request)
        answer = await self._call("CVSync2AsyncSubmitTask", body, seconds=request.timeout)
        job_id = _data(answer).get("task_id")
        if not job_id:
            raise UpstreamError(
                "The Visual API accepted the job but gave no task_id",
                upstream_code="NoTaskId",
                retryable=False,
            )
        return str(job_id)

    async def result(self, request: ImageRequest, job_id: str) -> UpstreamResult | None:
        # Jimeng takes the watermark at poll time, in `req_json`
        shown: dict[str, Any] = {"return_url": False}
        if request.watermark:
            shown["logo_info"] = {"add_logo": True}
        body = {
            "req_key": request.upstream_model,
            "task_id": job_id,
            "req_json": json.dumps(shown),
        }
        answer = await self._call("CVSync2AsyncGetResult", body, job=True)
        status = _data(answer).get("status")
        if status in RUNNING:
            return None
        if status == "done":
            return _images(answer)
        raise UpstreamError(
            f"The Visual API job is {status or 'in an unknown state'}; it cannot be fetched again",
            upstream_code=f"Job{str(status).title().replace('_', '')}",
            retryable=False,
            job_gone=True,
        )

    async def probe(self, upstream_model: str) -> str:
        """A poll for a job that does not exist: the signature is checked first, and a poll
        makes nothing."""
        body = {"req_key": upstream_model, "task_id": PROBE_JOB, "req_json": "{}"}
        try:
            answer = await self._call("CVSync2AsyncGetResult", body, job=True)
        except UpstreamError as exc:
            if exc.http_status in (401, 403):
                raise
            return f"signature accepted ({exc.upstream_code} for a job that does not exist)"
        return f"signature accepted (job status {_data(answer).get('status')!r})"

    async def fetch(self, url: str) -> bytes:
        return await fetch_url(self._http, url, self._timeout)

    async def aclose(self) -> None:
        await self._http.aclose()

    def _body(self, request: ImageRequest) -> dict[str, Any]:
        body: dict[str, Any] = {
            "req_key": request.upstream_model,
            "prompt": request.prompt,
            "return_url": False,
        }
        if request.sized:
            body |= {"width": request.width, "height": request.height}
            ratio = request.width / request.height
            if not DEFAULT_RATIO[0] <= ratio <= DEFAULT_RATIO[1]:  # Jimeng 4.x: widen the range
                body |= {
                    "min_ratio": min(ratio, DEFAULT_RATIO[0]),
                    "max_ratio": max(ratio, DEFAULT_RATIO[1]),
                }
        if request.seed is not None:  # absent: the API's own -1, a random seed
            body["seed"] = request.seed
        if request.scale is not None:
            body["scale"] = request.scale
        if request.steps is not None:
            body["ddim_steps"] = request.steps
        if request.negative_prompt:
            body["negative_prompt"] = request.negative_prompt
        if request.use_pre_llm is not None:
            body["use_pre_llm"] = request.use_pre_llm
        if request.outpaint:
            body |= request.outpaint
        if request.upscale:
            body["resolution"] = request.upscale
        if request.reference_images:
            body["binary_data_base64"] = [url.split(",", 1)[1] for url in request.reference_images]
        return {**body, **request.upstream_params}

    async def _call(
        self, action: str, body: dict[str, Any], job: bool = False, seconds: float | None = None
    ) -> dict[str, Any]:
        """`seconds`: the model's time for the call (None: the client's own, for a poll)."""
        payload = json.dumps(body, ensure_ascii=False)
        path = self._url.path or "/"
        query = {"Action": action, "Version": VERSION}
        headers = {"Content-Type": "application/json", "Host": self._url.netloc.decode()}
        SignerV4.sign(path, "POST", headers, payload, None, query, *self._keys)  # adds headers
        url = self._url.copy_with(path=path, query=urlencode(query).encode())
        try:
            response = await self._http.post(
                url,
                headers=headers,
                content=payload.encode(),
                timeout=httpx.USE_CLIENT_DEFAULT if seconds is None else seconds,
            )
        except httpx.TimeoutException:
            raise UpstreamError(
                "The Visual API did not answer in time", upstream_code="Timeout", retryable=True
            ) from None
        except httpx.HTTPError as exc:
            raise UpstreamError(
                f"Could not reach the Visual API: {type(exc).__name__}",
                upstream_code="ConnectionError",
                retryable=True,
            ) from None
        return _checked(response, job)


def _checked(response: httpx.Response, job: bool) -> dict[str, Any]:
    try:
        answer = response.json()
    except ValueError:
        raise UpstreamError(
            f"The Visual API answered with something not JSON (HTTP {response.status_code})",
            upstream_code="MalformedResponse",
            retryable=response.status_code >= 500,
            http_status=response.status_code,
        ) from None
    if not isinstance(answer, dict):
        raise malformed("The Visual API", "the answer is not a JSON object")
    meta_error = _object(answer.get("ResponseMetadata"), "`ResponseMetadata`").get("Error")
    if meta_error:  # signature and access failures
        meta_error = _object(meta_error, "`ResponseMetadata.Error`")
        meta_code = str(meta_error.get("Code") or f"HTTP{response.status_code}")
        raise UpstreamError(
            f"The Visual API refused the credentials ({meta_code}): "
            f"{meta_error.get('Message', '')}",
            upstream_code=meta_code,
            retryable=response.status_code >= 500,
            http_status=response.status_code,
        )
    code = answer.get("code")
    if not isinstance(code, int):
        raise malformed("The Visual API", "`code` is missing or not a number")
    if code != SUCCESS:
        raise UpstreamError(
            f"The Visual API refused the request ({code}): {answer.get('message', '')}",
            upstream_code=str(code),
            retry_after=1.0 if code in VISUAL_LIMITS else None,
            http_status=response.status_code,
            # a poll refused for any reason but a limit means the job itself failed
            job_gone=job and code not in VISUAL_LIMITS,
            **retry_fields(visual(code)),
        )
    return answer


def _object(value: Any, what: str) -> dict[str, Any]:
    """A part of the answer that must be an object (absent or null: empty)."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise malformed("The Visual API", f"{what} is not an object")
    return value


def _data(answer: dict[str, Any]) -> dict[str, Any]:
    return _object(answer.get("data"), "`data`")


def _strings(data: dict[str, Any], name: str) -> list[str]:
    value = data.get(name) or []
    if not isinstance(value, list) or not all(isinstance(v, str | None) for v in value):
        raise malformed("The Visual API", f"`data.{name}` is not a list of strings")
    return [v for v in value if v]


def _images(answer: dict[str, Any]) -> UpstreamResult:
    data = _data(answer)
    images = [
        UpstreamImage(b64_json=checked_inline("The Visual API", item))
        for item in _strings(data, "binary_data_base64")
    ]
    if not images:
        urls = _strings(data, "image_urls")
        if any(not url.startswith(("https://", "http://")) for url in urls):
            raise malformed("The Visual API", "`data.image_urls` holds something not a URL")
        images = [UpstreamImage(url=url) for url in urls]
    if not images:
        raise UpstreamError(
            "The Visual API finished the job without any image",
            upstream_code="NoImage",
            retryable=False,
        )
    return UpstreamResult(images=images, request_id=answer.get("request_id"))
