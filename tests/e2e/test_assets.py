"""What the page loads from where, in Chromium: images from an S3 bucket through presigned
redirects (the CSP allows exactly that bucket), /docs with no network beyond this machine,
and APP_NAME as the window title."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Page, Route, expect

from tests.e2e.test_studio import open_studio, unique
from tests.support import Server, local, moto_s3, s3_settings, serving, wait_task

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def s3_studio(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, str]]:
    """`volcimage serve` storing in moto's S3 with presigned downloads (the default)."""
    root: Path = tmp_path_factory.mktemp("s3-studio")
    with moto_s3() as bucket_url:
        settings = s3_settings(bucket_url, "e2e/", presign=True)
        with serving(root, APP_NAME="画室 Atelier", **settings) as server:
            yield server, bucket_url


def watch_csp(page: Page) -> list[str]:
    """Content-Security-Policy refusals the page reports (Chromium logs them to the console)."""
    refusals: list[str] = []
    page.on(
        "console",
        lambda msg: refusals.append(msg.text) if "Content Security Policy" in msg.text else None,
    )
    return refusals


def test_images_from_an_s3_bucket_show_as_thumbnails_and_originals(
    page: Page, s3_studio: tuple[Server, str]
) -> None:
    server, bucket_url = s3_studio
    prompt = unique("a harbour in fog")
    created = local.post(
        f"{server.url}/api/v1/generate",
        json={"prompt": prompt, "model": "seedream-3.0", "num_images": 2},
    )
    assert wait_task(server.url, created.json()["task_id"])["status"] == "completed"
    refusals = watch_csp(page)
    loaded: list[str] = []
    page.on("requestfinished", lambda request: loaded.append(request.url))

    errors = open_studio(page, server.url)
    expect(page).to_have_title("画室 Atelier")
    card = page.get_by_test_id("gallery-task").filter(has_text=prompt)
    thumbnails = card.locator("img")
    expect(thumbnails).to_have_count(2)
    for index in range(2):
        expect(thumbnails.nth(index)).to_have_js_property("complete", True)
        assert thumbnails.nth(index).evaluate("img => img.naturalWidth") > 0

    card.get_by_test_id("gallery-image").first.click()
    original = page.get_by_test_id("viewer-image")
    expect(original).to_be_visible()
    expect(original).to_have_js_property("complete", True)
    thumbnail_width = thumbnails.first.evaluate("img => img.naturalWidth")
    assert original.evaluate("img => img.naturalWidth") > thumbnail_width  # the original file

    from_bucket = [url for url in loaded if url.startswith(bucket_url)]
    assert any("thumbnails/" in url for url in from_bucket), loaded
    assert any("images/" in url for url in from_bucket), loaded
    assert refusals == [] and errors == []


def test_only_the_bucket_is_added_to_the_policy(s3_studio: tuple[Server, str]) -> None:
    server, bucket_url = s3_studio
    policy = local.get(server.url + "/").headers["content-security-policy"]
    images = next(p for p in policy.split("; ") if p.startswith("img-src"))
    bucket = urlsplit(bucket_url)
    assert images == f"img-src 'self' data: blob: {bucket.scheme}://{bucket.netloc}"
    assert "script-src 'self';" in policy  # nothing else is loosened


def test_docs_render_with_no_network_beyond_this_machine(page: Page, studio_url: str) -> None:
    outside: list[str] = []

    def local_only(route: Route) -> None:
        host = urlsplit(route.request.url).hostname
        if host in ("127.0.0.1", "localhost"):
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    page.route("**/*", local_only)
    refusals = watch_csp(page)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(studio_url + "/docs")
    expect(page.locator(".swagger-ui .info .title")).to_contain_text("volcimage")
    generate = page.locator(".opblock-post").filter(has_text="/api/v1/generate").first
    expect(generate).to_be_visible()
    generate.locator(".opblock-summary").click()  # the inline script's UI is live
    expect(generate.locator(".opblock-body")).to_be_visible()
    assert outside == [] and refusals == [] and errors == []
