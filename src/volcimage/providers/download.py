"""Results as the runner takes them from an upstream: downloads and inline data, bounded in
time and size, since a result URL or answer can be slow or huge on purpose."""

from __future__ import annotations

import asyncio

import httpx

from volcimage.core.errors import UpstreamError

# The largest documented output is a 4096x4096 PNG: at most 64 MiB even as incompressible
# RGBA; a quarter more is margin (docs/decisions.md).
MAX_RESULT_BYTES = 80 * 2**20


async def fetch_url(client: httpx.AsyncClient, url: str, deadline: float) -> bytes:
    """Download a result within `deadline` seconds in all (httpx's timeout is per read, which
    a URL sending a byte a second never trips); an expired or missing URL is final."""
    try:
        async with asyncio.timeout(deadline), client.stream("GET", url) as response:
            _check_status(response)
            declared = response.headers.get("content-length", "")
            if declared.isdigit() and int(declared) > MAX_RESULT_BYTES:
                raise too_large("The result URL")
            body = bytearray()
            async for chunk in response.aiter_bytes():  # decoded: a gzip bomb counts in full
                body += chunk
                if len(body) > MAX_RESULT_BYTES:
                    raise too_large("The result URL")
            return bytes(body)
    except TimeoutError:
        raise UpstreamError(
            f"Downloading the result took longer than REQUEST_TIMEOUT ({deadline:g} s)",
            upstream_code="DownloadTimeout",
            retryable=True,
        ) from None
    except httpx.HTTPError as exc:
        raise UpstreamError(
            f"Downloading the result failed: {type(exc).__name__}",
            upstream_code="DownloadFailed",
            retryable=True,
        ) from None


def _check_status(response: httpx.Response) -> None:
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


def checked_inline(upstream: str, b64: str) -> str:
    """Inline base64 image data, bounded as downloads are."""
    if len(b64) // 4 * 3 > MAX_RESULT_BYTES:
        raise too_large(upstream)
    return b64


def too_large(source: str) -> UpstreamError:
    return UpstreamError(
        f"{source} sent a result larger than {MAX_RESULT_BYTES // 2**20} MiB,"
        " more than any image the API makes",
        upstream_code="ResultTooLarge",
        retryable=False,
    )
