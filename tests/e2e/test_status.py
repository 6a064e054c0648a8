"""What the page says about where calls go, which seed made which image, and how long a task
is taking: in Chromium, against the real server (the provider states through a routed answer
of /system/info, as the API gives it for each combination of keys and VOLC_PROVIDER_MODE)."""

from __future__ import annotations

import json
import re
from typing import Any

import httpx
import pytest
from playwright.sync_api import Page, expect

from tests.e2e.test_studio import generate, open_studio, unique
from tests.support import local

pytestmark = pytest.mark.e2e

ARK, VISUAL = "Seedream / SeedEdit", "即梦 / 通用"


def _info(ark: str, visual: str) -> dict[str, Any]:
    """/system/info as the server answers it with these provider states ("refused": real, and
    its probe was refused)."""
    given = {"ark": ark, "visual": visual}
    states = {name: "real" if state == "refused" else state for name, state in given.items()}
    credentials = {"ark": ["ARK_API_KEY"], "visual": ["VOLC_ACCESS_KEY", "VOLC_SECRET_KEY"]}
    models = {"ark": ["seedream-4.0", "seedream-3.0"], "visual": ["jimeng-3.1"]}
    return {
        "version": "test",
        "api_connected": not {"not_configured", "refused"} & set(given.values()),
        "mode": "demo" if set(states.values()) == {"demo"} else "real",
        "models": models["ark"] + models["visual"],
        "providers": {
            name: {
                "state": state,
                "models": models[name],
                "credentials": credentials[name],
                "connected": given[name] not in ("not_configured", "refused"),
                "detail": "",
            }
            for name, state in states.items()
        },
        "quota": {"used": 0, "limit": None},
        "user_quota": None,
    }


# (ark, visual) -> (top bar badge, banner, status bar mode, connection)
STATES = [
    ("demo", "demo", "演示模式", None, "演示模式（内置模拟器）", "已连接"),
    ("demo", "real", f"演示：{ARK}", None, f"{ARK} 演示 · {VISUAL} 火山引擎", "已连接"),
    ("real", "demo", f"演示：{VISUAL}", None, f"{ARK} 火山引擎 · {VISUAL} 演示", "已连接"),
    ("real", "real", None, None, "已连接火山引擎", "已连接"),
    (
        "not_configured",
        "real",
        None,
        (
            f"{ARK} 缺少火山引擎凭据，这些模型的生成会失败。",
            "在 .env 中设置 ARK_API_KEY 后重启服务",
        ),
        f"{ARK} 缺少凭据 · {VISUAL} 火山引擎",
        "缺少凭据",
    ),
    (
        "real",
        "not_configured",
        None,
        (
            f"{VISUAL} 缺少火山引擎凭据，这些模型的生成会失败。",
            "在 .env 中设置 VOLC_ACCESS_KEY / VOLC_SECRET_KEY 后重启服务",
        ),
        f"{ARK} 火山引擎 · {VISUAL} 缺少凭据",
        "缺少凭据",
    ),
    (
        "refused",
        "real",
        None,
        (
            f"火山引擎拒绝了 {ARK} 的凭据，这些模型的生成会失败。",
            "检查 .env 中的 ARK_API_KEY",
        ),
        f"{ARK} 密钥被拒 · {VISUAL} 火山引擎",
        "密钥被拒",
    ),
    (
        "not_configured",
        "not_configured",
        None,
        (
            f"{ARK}、{VISUAL} 缺少火山引擎凭据，这些模型的生成会失败。",
            "设置 ARK_API_KEY / VOLC_ACCESS_KEY / VOLC_SECRET_KEY 后",
        ),
        f"{ARK} 缺少凭据 · {VISUAL} 缺少凭据",
        "缺少凭据",
    ),
]


@pytest.mark.parametrize(("ark", "visual", "badge", "banner", "mode", "connection"), STATES)
def test_top_bar_banner_and_status_bar_say_where_each_providers_calls_go(
    page: Page,
    studio_url: str,
    ark: str,
    visual: str,
    badge: str | None,
    banner: tuple[str, str] | None,
    mode: str,
    connection: str,
) -> None:
    body = json.dumps(_info(ark, visual))
    page.route(
        "**/api/v1/system/info",
        lambda route: route.fulfill(body=body, content_type="application/json"),
    )
    page.goto(studio_url)
    expect(page.locator("[data-ready=true]")).to_have_count(1)
    expect(page.get_by_test_id("mode-text")).to_have_text(mode)
    expect(page.get_by_test_id("connection")).to_have_text(connection)
    if badge is None:
        expect(page.get_by_test_id("demo-badge")).to_be_hidden()
    else:
        expect(page.get_by_test_id("demo-badge")).to_have_text(badge)
    if banner is None:
        expect(page.get_by_test_id("credentials-banner")).to_be_hidden()
    else:
        shown = page.get_by_test_id("credentials-banner")
        expect(shown.locator("strong")).to_have_text(banner[0])
        expect(shown.locator("span")).to_contain_text(banner[1])


def test_the_status_is_in_english_too(page: Page, studio_url: str) -> None:
    body = json.dumps(_info("not_configured", "real"))
    page.route(
        "**/api/v1/system/info",
        lambda route: route.fulfill(body=body, content_type="application/json"),
    )
    page.goto(studio_url)
    expect(page.locator("[data-ready=true]")).to_have_count(1)
    page.get_by_test_id("lang-toggle").click()
    shown = page.get_by_test_id("credentials-banner")
    expect(shown.locator("strong")).to_have_text(
        "No VolcEngine credentials for Seedream / SeedEdit: "
        "generations with these models will fail."
    )
    expect(shown.locator("span")).to_contain_text("Set ARK_API_KEY in .env and restart")
    expect(page.get_by_test_id("mode-text")).to_have_text(
        "Seedream / SeedEdit no credentials · Jimeng / General VolcEngine"
    )


def test_the_viewer_shows_each_images_seed_and_remix_makes_that_one_again(
    page: Page, studio_url: str
) -> None:
    open_studio(page, studio_url)
    prompt = unique("three seeds")
    page.get_by_test_id("model-select").select_option("seedream-3.0")
    page.get_by_test_id("seed-mode").select_option("fixed")
    page.get_by_test_id("seed").fill("777")
    card = generate(page, prompt, count=3)
    expect(card.get_by_test_id("gallery-image")).to_have_count(3, timeout=60_000)
    card.get_by_test_id("gallery-image").nth(1).click()
    expect(page.get_by_test_id("viewer-meta")).to_contain_text("种子 778")
    page.keyboard.press("ArrowRight")
    expect(page.get_by_test_id("viewer-meta")).to_contain_text("种子 779")
    page.get_by_test_id("viewer-remix").click()
    expect(page.get_by_test_id("viewer")).to_be_hidden()
    expect(page.get_by_test_id("prompt")).to_have_value(prompt)
    expect(page.get_by_test_id("seed-mode")).to_have_value("fixed")
    expect(page.get_by_test_id("seed")).to_have_value("779")
    expect(page.get_by_test_id("count")).to_have_value("1")


def test_a_running_task_shows_its_time_against_the_usual_and_the_tab_counts_it(
    page: Page, studio_url: str, emulator: httpx.Client
) -> None:
    open_studio(page, studio_url)
    title = page.title()
    emulator.post("/latency", json={"latency_ms": 120_000})  # cancelled long before
    card = generate(page, unique("a slow sunrise"))
    timing = card.get_by_test_id("task-timing")
    expect(timing).to_have_text(re.compile(r"^\d+ 秒 / 约 \d+ 秒"), timeout=60_000)
    task_id = card.get_attribute("data-task-id")
    shown = local.get(f"{studio_url}/api/v1/task/{task_id}").json()
    assert shown["status"] == "processing"
    expect(timing).to_contain_text(f"约 {shown['estimated_seconds']} 秒")  # the API's estimate
    first = int(timing.inner_text().split(" ")[0])
    expect(timing).not_to_have_text(re.compile(rf"^{first} 秒"), timeout=60_000)  # it counts
    expect(card.get_by_test_id("task-progress")).to_have_class(re.compile("progress-live"))
    expect(page).to_have_title(re.compile(rf"^[1-9]\d* 个生成中 · {re.escape(title)}$"))

    page.get_by_test_id("active-task").filter(
        has=page.get_by_text("a slow sunrise")
    ).get_by_test_id("cancel").click()
    expect(card.get_by_test_id("task-status")).to_have_text("已取消", timeout=60_000)
    expect(page.get_by_test_id("active-task")).to_have_count(0, timeout=60_000)
    expect(page).to_have_title(title)


STUB_NOTIFICATIONS = """
window.__notes = [];
window.__hidden = false;
window.Notification = class {
  constructor(title, options) { window.__notes.push({ title, body: options.body }); }
  close() {}
  static requestPermission() {
    window.Notification.permission = "granted";
    return Promise.resolve("granted");
  }
};
window.Notification.permission = "default";
Object.defineProperty(document, "visibilityState", {
  get: () => (window.__hidden ? "hidden" : "visible"),
});
"""


def test_a_task_that_ends_out_of_sight_raises_a_notification_when_asked_for(
    page: Page, studio_url: str
) -> None:
    page.add_init_script(STUB_NOTIFICATIONS)
    open_studio(page, studio_url)
    toggle = page.get_by_test_id("notify-toggle")
    expect(toggle).to_have_attribute("aria-pressed", "false")
    toggle.click()
    expect(toggle).to_have_attribute("aria-pressed", "true")

    seen = generate(page, unique("watched"))
    expect(seen.get_by_test_id("task-status")).to_have_text("已完成", timeout=60_000)
    assert page.evaluate("window.__notes") == [], "a task seen ending needs no notification"

    prompt = unique("out of sight")
    page.evaluate("window.__hidden = true")  # the tab is in the background from now on
    unseen = generate(page, prompt)
    expect(unseen.get_by_test_id("task-status")).to_have_text("已完成", timeout=60_000)
    notes = page.evaluate("window.__notes")
    assert len(notes) == 1 and notes[0]["body"] == prompt
    assert notes[0]["title"].startswith("已完成")

    page.reload()  # the choice is kept
    expect(page.get_by_test_id("notify-toggle")).to_have_attribute("aria-pressed", "true")


def test_a_phone_top_bar_says_part_demo_in_a_word_beside_the_name(
    page: Page, studio_url: str
) -> None:
    page.set_viewport_size({"width": 390, "height": 844})
    body = json.dumps(_info("demo", "real"))
    page.route(
        "**/api/v1/system/info",
        lambda route: route.fulfill(body=body, content_type="application/json"),
    )
    page.goto(studio_url)
    short = page.get_by_test_id("demo-badge-short")
    expect(short).to_have_text("部分演示")
    expect(page.get_by_test_id("demo-badge")).to_be_hidden()
    name = page.locator("header h1").bounding_box()
    badge = short.bounding_box()
    assert name is not None and badge is not None
    assert name["x"] + name["width"] <= badge["x"], "the badge does not cover the name"
