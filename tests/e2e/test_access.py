"""The page on a studio with an API key: it asks for the key once, then works as usual."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.support import Server, free_port, process_env

pytestmark = pytest.mark.e2e
KEY = "e2e-team-key-77"


@pytest.fixture
def guarded_url(tmp_path: Path) -> Iterator[str]:
    port = free_port()
    env = process_env(
        tmp_path,
        f"sqlite+aiosqlite:///{tmp_path}/data/database.db",
        APP_PORT=port,
        ENABLE_API_KEY_AUTH="true",
        API_KEY=KEY,
    )
    server = Server(["serve"], env, tmp_path, port)
    try:
        server.wait_ready()
        yield server.url
    finally:
        server.stop()


def test_page_asks_for_the_api_key_then_generates(page: Page, guarded_url: str) -> None:
    page.goto(guarded_url)
    dialog = page.get_by_test_id("login")
    expect(dialog).to_be_visible()
    page.get_by_test_id("api-key").fill("not-the-key")
    page.get_by_test_id("login-submit").click()
    expect(page.get_by_test_id("login-error")).to_have_text("密钥不正确")
    page.get_by_test_id("api-key").fill(KEY)
    page.get_by_test_id("login-submit").click()
    expect(dialog).to_be_hidden()
    expect(page.get_by_test_id("connection")).to_contain_text("已连接")
    page.get_by_test_id("model-select").select_option("seedream-3.0")
    page.get_by_test_id("prompt").fill("behind a key")
    page.get_by_test_id("generate").click()
    card = page.get_by_test_id("gallery-task").filter(has_text="behind a key")
    expect(card.get_by_test_id("gallery-image")).to_have_count(1, timeout=20_000)
    expect(card.locator("img").first).to_have_js_property("complete", True)
    assert card.locator("img").first.evaluate("img => img.naturalWidth") > 0
    cookies = page.context.cookies()
    assert all(KEY not in c["value"] for c in cookies)
    assert any(c["name"] == "volcimage_session" and c["httpOnly"] for c in cookies)
