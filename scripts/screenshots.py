"""Refreshes docs/screenshots/: the studio in demo mode at 1440×900 and 390×844, light and dark.

Run with `make screenshots`. Starts its own server on a free port with a throwaway database,
makes a few tasks through the API, then photographs the page in Debian's Chromium.
"""

from __future__ import annotations

import itertools
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from playwright.sync_api import expect, sync_playwright

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "docs" / "screenshots"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-sync"]
PROMPTS = [
    ("清晨薄雾中的江南水乡，水墨风格", 4),
    ("一只戴着宇航员头盔的橘猫，电影感光影", 2),
    ("赛博朋克城市夜景，霓虹灯倒映在雨后的街道", 2),
]
IMAGES_SHOWN = """[...document.images]
    .filter(i => i.offsetParent && i.getBoundingClientRect().top < innerHeight)
    .every(i => i.complete && i.naturalWidth > 0)"""
LANGS = ("zh-CN", "en")
TYPED = {  # what each screenshot shows typed in the prompt
    "zh-CN": "雪山脚下的小木屋，温暖的灯光，黄昏",
    "en": "A cabin below snowy peaks, warm light, dusk",
}
VIEWS = [
    ("desktop", {"width": 1440, "height": 900}),
    ("phone", {"width": 390, "height": 844}),
]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server(data: Path, port: int, **settings: str) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "APP_PORT": str(port),
        "DATA_DIR": str(data),
        "IMAGE_DIR": str(data / "images"),
        "THUMBNAIL_DIR": str(data / "thumbnails"),
        "DATABASE_URL": f"sqlite+aiosqlite:///{data}/database.db",
        "LOG_FILE": str(data / "app.log"),
        "VOLC_PROVIDER_MODE": "demo",
        "EMULATOR_LATENCY_MS": "0",
        **settings,
    }
    return subprocess.Popen(
        [sys.executable, "-m", "volcimage", "serve"], env=env, cwd=data, stdout=subprocess.DEVNULL
    )


def prepare(url: str) -> None:
    with httpx.Client(base_url=url, timeout=30) as client:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if client.get("/api/v1/health").status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        ids = []
        for prompt, count in PROMPTS:
            body = {"prompt": prompt, "model": "seedream-3.0", "num_images": count, "seed": 7}
            ids.append(client.post("/api/v1/generate", json=body).json()["task_id"])
        for task_id in ids:
            while client.get(f"/api/v1/task/{task_id}").json()["status"] != "completed":
                time.sleep(0.2)
        first = client.get(f"/api/v1/task/{ids[0]}").json()["images"][0]["image_id"]
        client.patch(f"/api/v1/images/{first}", json={"favorite": True, "tags": ["水乡"]})


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        port = free_port()
        server = start_server(Path(tmp), port)
        url = f"http://127.0.0.1:{port}"
        try:
            prepare(url)
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(
                    executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS
                )
                for (view, viewport), scheme, lang in itertools.product(
                    VIEWS, ("light", "dark"), LANGS
                ):
                    page = browser.new_page(viewport=viewport, color_scheme=scheme, locale=lang)
                    page.add_init_script(f"localStorage.setItem('volcimage.lang', '{lang}')")
                    page.goto(url)
                    page.get_by_test_id("prompt").fill(TYPED[lang])
                    if view == "phone":
                        page.get_by_test_id("phone-tab-gallery").click()
                    expect(page.locator("[data-ready=true]")).to_have_count(1)
                    while not page.evaluate(IMAGES_SHOWN):
                        page.wait_for_timeout(100)
                    page.wait_for_timeout(400)  # let the 300 ms transitions settle
                    suffix = "" if lang == "zh-CN" else f"-{lang}"
                    path = OUT / f"{view}-{scheme}{suffix}.png"
                    page.screenshot(path=str(path))
                    print(path.relative_to(ROOT))
                    page.close()
                browser.close()
        finally:
            server.terminate()
            server.wait(15)


if __name__ == "__main__":
    main()
