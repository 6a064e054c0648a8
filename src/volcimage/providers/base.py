"""What every provider offers the runner: one paid call, and the download of its results."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from volcimage.core.errors import UpstreamError, redact

# The longest an upstream's Retry-After holds a task back: Ark's limits are per minute (IPM,
# RPM), so a longer wait is a broken or hostile answer, not a rate limit (docs/decisions.md).
RETRY_AFTER_CAP = 600.0


def malformed(upstream: str, what: str) -> UpstreamError:
    """An answer of a shape the API does not give: final, since asking again pays again."""
    return UpstreamError(
        f"{upstream} gave a malformed answer: {what}",
        upstream_code="MalformedResponse",
        retryable=False,
    )


@dataclass(frozen=True)
class ImageRequest:
    """One upstream call, for one image, with the model's upstream id."""

    upstream_model: str
    prompt: str
    width: int
    height: int
    seed: int | None = None
    scale: float | None = None
    steps: int | None = None
    negative_prompt: str | None = None
    watermark: bool = False
    upstream_params: dict[str, Any] = field(default_factory=dict)
    reference_images: tuple[str, ...] = ()  # data URLs; a tool's source (and mask) first
    group_size: int = 0  # > 0: one call for a group of up to this many images, streamed
    sized: bool = True  # False: the output follows the input image; no size is sent
    output_format: str | None = None
    optimize_prompt: str | None = None  # a mode: standard or fast
    web_search: bool = False
    use_pre_llm: bool | None = None
    background: str | None = None
    outpaint: dict[str, float] | None = None  # top, bottom, left, right: fractions of a side
    upscale: str | None = None  # 4k or 8k
    layer_decomposition: bool = False  # one call: a base image and its layers
    timeout: float | None = None  # seconds the call may take; None: the client's own


@dataclass
class UpstreamImage:
    """One image of an answer: a URL (valid 24 h), inline base64, or the upstream's refusal."""

    url: str | None = None
    b64_json: str | None = None
    size: str | None = None
    error_code: str | None = None
    error_message: str | None = None

    def __post_init__(self) -> None:
        # a refusal's text is the upstream's, shown in the task's error
        if self.error_code:
            self.error_code = redact(self.error_code)
        if self.error_message:
            self.error_message = redact(self.error_message)


@dataclass
class UpstreamResult:
    images: list[UpstreamImage]
    request_id: str | None = None
    usage: dict[str, Any] = field(default_factory=dict)
    cut_off: str | None = None  # why a streamed group has fewer images than it would have


class Provider(Protocol):
    name: str

    async def generate(self, request: ImageRequest) -> UpstreamResult:
        """Make the paid call. Raises UpstreamError, classified retryable or final."""
        ...

    async def fetch(self, url: str) -> bytes:
        """Download a result URL. Raises UpstreamError."""
        ...

    async def probe(self, upstream_model: str) -> str:
        """Prove the credentials with a request that makes no image and costs nothing; what
        the upstream said. Raises UpstreamError (with http_status 401/403) if refused."""
        ...

    async def aclose(self) -> None: ...


class StreamProvider(Provider, Protocol):
    """An upstream that can stream a group of images, each as soon as it is ready."""

    def stream(self, request: ImageRequest) -> AsyncIterator[UpstreamImage]:
        """Images (or per-image refusals) in order. Raises UpstreamError."""
        ...


class JobProvider(Provider, Protocol):
    """An upstream whose models may run as asynchronous jobs: submit, then poll."""

    async def submit(self, request: ImageRequest) -> str:
        """Start a paid job; returns its upstream id. Raises UpstreamError."""
        ...

    async def result(self, request: ImageRequest, job_id: str) -> UpstreamResult | None:
        """The job's images, or None while it is still queued or running."""
        ...
