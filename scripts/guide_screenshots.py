"""Refreshes docs/screenshots/guide/: the panels the user guides show, in Chinese and English.

Run with `make screenshots` (after the README's shots). Starts its own servers in demo mode on
free ports with throwaway data (one plain, one with user accounts), makes tasks through the API,
then photographs each panel in Debian's Chromium. PNGs are reduced to a 256-colour palette so
each stays well under 200 KB.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from PIL import Image
from playwright.sync_api import Browser, Locator, Page, expect, sync_playwright
from screenshots import CHROMIUM_ARGS, IMAGES_SHOWN, LANGS, PROMPTS, ROOT, free_port, start_server

OUT = ROOT / "docs" / "screenshots" / "guide"
VIEWPORT = {"width": 1440, "height": 900}
TALL = {"width": 1440, "height": 1250}
PASSWORD = "guide-password"  # noqa: S105 - a throwaway account of a throwaway database
TYPED = {
    "zh-CN": "雪山脚下的小木屋，温暖的灯光，黄昏",
    "en": "A cabin below snowy peaks, warm light, dusk",
}
EDIT = {"zh-CN": "让画面下起雪", "en": "Make it snow"}


def wait_healthy(client: httpx.Client) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if client.get("/api/v1/health").status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise SystemExit("the server did not become healthy")


def wait_done(client: httpx.Client, task_id: str) -> None:
    while client.get(f"/api/v1/task/{task_id}").json()["status"] in ("pending", "processing"):
        time.sleep(0.2)


def fill_history(client: httpx.Client) -> None:
    """The README's tasks, a favourite with a tag, a template, and one refused prompt."""
    ids = []
    for prompt, count in PROMPTS:
        body = {"prompt": prompt, "model": "seedream-3.0", "num_images": count, "seed": 7}
        ids.append(client.post("/api/v1/generate", json=body).json()["task_id"])
    for task_id in ids:
        wait_done(client, task_id)
    first = client.get(f"/api/v1/task/{ids[0]}").json()["images"][0]["image_id"]
    client.patch(f"/api/v1/images/{first}", json={"favorite": True, "tags": ["水乡"]})
    template = {
        "name": "水墨风景",
        "prompt": "水墨风格的山水，留白，淡雅",
        "model": "seedream-3.0",
        "params": {"width": 1280, "height": 720, "seed": 42},
    }
    client.post("/api/v1/templates", json=template).raise_for_status()
    client.post("/emulator/_emulator/faults", json={"faults": ["input_sensitive"]})
    refused = {"prompt": "一张会被内容审核拒绝的提示词", "model": "seedream-4.0"}
    wait_done(client, client.post("/api/v1/generate", json=refused).json()["task_id"])


def settled(page: Page) -> None:
    expect(page.locator("[data-ready=true]")).to_have_count(1)
    while not page.evaluate(IMAGES_SHOWN):
        page.wait_for_timeout(100)
    page.wait_for_timeout(400)  # let the 300 ms transitions settle


def save(target: Page | Locator, name: str, lang: str) -> None:
    """A screenshot reduced to a palette: docs pictures, not photographs."""
    raw = target.screenshot()
    image = Image.open(io.BytesIO(raw)).convert("RGB").quantize(256, dither=Image.Dither.NONE)
    suffix = "" if lang == "zh-CN" else f"-{lang}"
    path = OUT / f"{name}{suffix}.png"
    image.save(path, optimize=True)
    print(f"{path.relative_to(ROOT)}  {path.stat().st_size // 1024} KB")


def open_page(browser: Browser, url: str, lang: str) -> Page:
    page = browser.new_page(viewport=VIEWPORT, color_scheme="light", locale=lang)
    page.add_init_script(f"localStorage.setItem('volcimage.lang', '{lang}')")
    page.goto(url)
    return page


def first_run(browser: Browser, url: str, lang: str) -> None:
    page = open_page(browser, url, lang)
    settled(page)
    save(page, "first-run", lang)
    page.close()


def panels(browser: Browser, url: str, lang: str) -> None:
    """The studio with history: parameters, templates, viewer, history, shortcuts, settings."""
    page = open_page(browser, url, lang)
    page.get_by_test_id("prompt").fill(TYPED[lang])
    settled(page)
    save(page, "studio", lang)

    page.get_by_test_id("model-select").select_option("general-2.0-pro")
    page.locator("[data-testid=params-panel] details").first.evaluate("d => d.open = true")
    page.get_by_test_id("seed-mode").select_option("fixed")
    page.get_by_test_id("seed").fill("42")
    page.set_viewport_size(TALL)  # the whole panel, without its scroll
    page.wait_for_timeout(300)
    save(page.get_by_test_id("params-panel"), "parameters", lang)
    page.set_viewport_size(VIEWPORT)

    page.get_by_test_id("model-select").select_option("seededit-3.0")
    page.get_by_test_id("prompt").fill(EDIT[lang])
    page.get_by_test_id("gallery-image").nth(4).click()  # the favourite, with its tag
    expect(page.get_by_test_id("viewer")).to_be_visible()
    page.wait_for_timeout(400)
    save(page, "viewer", lang)
    page.get_by_test_id("viewer-reference").click()
    page.get_by_test_id("viewer-close").click()
    expect(page.get_by_test_id("reference")).to_have_count(1)
    page.set_viewport_size(TALL)
    page.wait_for_timeout(400)
    save(page.get_by_test_id("params-panel"), "reference", lang)
    page.set_viewport_size(VIEWPORT)

    page.get_by_test_id("template-select").click()
    page.keyboard.press("Escape")
    page.get_by_test_id("tab-history").click()
    boxes = page.locator("[data-testid=select-task]:enabled")
    boxes.first.check()
    boxes.nth(1).check()
    expect(page.get_by_test_id("selection-bar")).to_be_visible()
    settled(page)
    save(page.get_by_test_id("side-panel"), "history", lang)

    page.get_by_test_id("help-button").click()
    expect(page.get_by_test_id("help")).to_be_visible()
    page.wait_for_timeout(400)
    save(page.get_by_test_id("help"), "shortcuts", lang)
    page.keyboard.press("Escape")
    page.get_by_test_id("settings-button").click()
    expect(page.get_by_test_id("settings")).to_be_visible()
    page.wait_for_timeout(400)
    save(page.get_by_test_id("settings"), "settings", lang)
    page.close()


def running(browser: Browser, url: str, lang: str) -> None:
    """A task in flight: placeholders in the gallery, live progress in the task list."""
    httpx.post(f"{url}/emulator/_emulator/latency", json={"latency_ms": 60000, "jitter": 0})
    page = open_page(browser, url, lang)
    settled(page)
    page.get_by_test_id("model-select").select_option("seedream-3.0")
    page.get_by_test_id("prompt").fill(TYPED[lang])
    page.get_by_test_id("count").fill("4")
    page.get_by_test_id("generate").click()
    expect(page.get_by_test_id("active-task")).to_have_count(1)
    page.wait_for_timeout(3000)  # a few seconds of the progress bar
    save(page, "running", lang)
    page.get_by_test_id("cancel").first.click()
    page.close()
    httpx.post(f"{url}/emulator/_emulator/latency", json={"latency_ms": 0})


def accounts(browser: Browser, url: str, lang: str) -> None:
    page = open_page(browser, url, lang)
    expect(page.get_by_test_id("login")).to_be_visible()
    page.get_by_test_id("username").fill("boss")
    page.wait_for_timeout(400)
    save(page.get_by_test_id("login"), "sign-in", lang)
    page.get_by_test_id("password").fill(PASSWORD)
    page.get_by_test_id("login-submit").click()
    page.get_by_test_id("users-button").click()
    expect(page.get_by_test_id("user-row")).to_have_count(3)
    page.wait_for_timeout(400)
    save(page.get_by_test_id("users"), "users", lang)
    page.close()


def serving(data: Path, **settings: str) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    return start_server(data, port, **settings), f"http://127.0.0.1:{port}"


def add_users(data: Path, url: str) -> None:
    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite+aiosqlite:///{data}/database.db",
        "ENABLE_USER_ACCOUNTS": "true",
    }
    for name, extra in (("boss", ["--admin"]), ("alice", ["--quota", "50"]), ("chen", [])):
        command = [sys.executable, "-m", "volcimage", "user", "create", name, "--password-stdin"]
        subprocess.run(
            [*command, *extra], input=f"{PASSWORD}\n".encode(), env=env, cwd=data, check=True
        )
    with httpx.Client(base_url=url, timeout=30) as client:
        client.post("/api/v1/session", json={"username": "alice", "password": PASSWORD})
        token = client.get("/api/v1/session").json()["csrf_token"]
        client.headers["X-CSRF-Token"] = token
        body = {"prompt": PROMPTS[0][0], "model": "seedream-3.0", "num_images": 4}
        wait_done(client, client.post("/api/v1/generate", json=body).json()["task_id"])


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp, sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS
        )
        plain, team = Path(tmp) / "plain", Path(tmp) / "team"
        plain.mkdir()
        team.mkdir()
        servers = []
        try:
            server, url = serving(plain)
            servers.append(server)
            with httpx.Client(base_url=url, timeout=30) as client:
                wait_healthy(client)
                for lang in LANGS:
                    first_run(browser, url, lang)
                fill_history(client)
            for shot in (panels, running):  # a cancelled task in the last ones only
                for lang in LANGS:
                    shot(browser, url, lang)
            server, url = serving(team, ENABLE_USER_ACCOUNTS="true", USER_DAILY_IMAGE_QUOTA="20")
            servers.append(server)
            with httpx.Client(base_url=url, timeout=30) as client:
                wait_healthy(client)
            add_users(team, url)
            for lang in LANGS:
                accounts(browser, url, lang)
        finally:
            for server in servers:
                server.terminate()
                server.wait(15)
            browser.close()


if __name__ == "__main__":
    main()
