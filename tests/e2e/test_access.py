"""The page on a guarded studio: it asks for the API key, or for a username and password when
accounts are on, then works as usual for what the signed-in user may see."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.support import serving, volcimage

pytestmark = pytest.mark.e2e
KEY = "e2e-team-key-77"


@pytest.fixture
def guarded_url(tmp_path: Path) -> Iterator[str]:
    with serving(tmp_path, ENABLE_API_KEY_AUTH="true", API_KEY=KEY) as server:
        yield server.url


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


@pytest.fixture
def accounts_url(tmp_path: Path) -> Iterator[str]:
    """A studio with accounts: an admin and a member made with the CLI, as an operator would."""
    with serving(tmp_path, ENABLE_USER_ACCOUNTS="true") as server:
        for name, extra in (("boss", ["--admin"]), ("alice", [])):
            args = ["user", "create", name, "--password-stdin", *extra]
            made = volcimage(server.env, tmp_path, *args, stdin=f"{name}-password\n")
            assert made.returncode == 0, made.stderr
        yield server.url


def sign_in(page: Page, name: str, password: str) -> None:
    page.get_by_test_id("username").fill(name)
    page.get_by_test_id("password").fill(password)
    page.get_by_test_id("login-submit").click()


def test_members_sign_in_and_see_only_their_work_admins_manage_users(
    page: Page, accounts_url: str
) -> None:
    page.goto(accounts_url)
    dialog = page.get_by_test_id("login")
    expect(dialog).to_be_visible()
    expect(dialog).to_contain_text("登录 volcimage")
    page.keyboard.press("Escape")
    expect(dialog).to_be_visible()  # there is nothing to see before signing in
    sign_in(page, "alice", "wrong-password")
    expect(page.get_by_test_id("login-error")).to_have_text("用户名或密码不正确")
    sign_in(page, "alice", "alice-password")
    expect(dialog).to_be_hidden()
    expect(page.get_by_test_id("account-name")).to_have_text("alice")
    expect(page.get_by_test_id("users-button")).to_be_hidden()
    page.get_by_test_id("model-select").select_option("seedream-3.0")
    page.get_by_test_id("prompt").fill("alice's lantern")
    page.get_by_test_id("generate").click()
    card = page.get_by_test_id("gallery-task").filter(has_text="alice's lantern")
    expect(card.get_by_test_id("gallery-image")).to_have_count(1, timeout=20_000)
    expect(card.get_by_test_id("task-owner")).to_be_hidden()  # her own: no name to show
    page.get_by_test_id("sign-out").click()
    expect(dialog).to_be_visible()
    expect(page.get_by_test_id("gallery-task")).to_have_count(0)

    sign_in(page, "boss", "boss-password")
    expect(page.get_by_test_id("account-name")).to_have_text("boss · 管理员")
    theirs = page.get_by_test_id("gallery-task").filter(has_text="alice's lantern")
    expect(theirs.get_by_test_id("task-owner")).to_have_text("@alice")
    page.get_by_test_id("users-button").click()
    users = page.get_by_test_id("users")
    expect(users.get_by_test_id("user-row")).to_have_count(2)
    page.get_by_test_id("new-username").fill("carol")
    page.get_by_test_id("new-password").fill("carol-password")
    page.get_by_test_id("new-user-submit").click()
    expect(users.get_by_test_id("user-row")).to_have_count(3)
    carol = users.locator('[data-username="carol"]')
    carol.get_by_test_id("user-toggle").click()
    expect(carol.get_by_test_id("user-toggle")).to_have_text("启用")
    cookies = page.context.cookies()
    assert all("password" not in c["value"] for c in cookies)
