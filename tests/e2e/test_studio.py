"""The studio page in Chromium: what a designer does with it, click by click."""

from __future__ import annotations

import io
import re
import uuid
import zipfile

import httpx
import pytest
from playwright.sync_api import Locator, Page, Route, expect

from tests.support import wait_task
from volcimage.emulator.render import render_image

pytestmark = pytest.mark.e2e


def open_studio(page: Page, url: str) -> list[str]:
    """Opens the page and waits until it is live; returns the page's errors, filled as they come."""
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    page.goto(url)
    expect(page.locator("[data-ready=true]")).to_have_count(1)
    expect(page.get_by_test_id("connection")).to_contain_text("已连接")
    expect(page.get_by_test_id("model-select")).to_have_value("seedream-4.0")
    return errors


def generate(page: Page, prompt: str, *, count: int = 1, model: str = "seedream-3.0") -> Locator:
    """Writes a prompt, submits it, and returns the new task's card in the gallery."""
    page.get_by_test_id("model-select").select_option(model)
    page.get_by_test_id("prompt").fill(prompt)
    page.get_by_test_id("count").fill(str(count))
    page.get_by_test_id("generate").click()
    card = page.get_by_test_id("gallery-task").filter(has_text=prompt)
    expect(card).to_have_count(1)
    return card


def unique(text: str) -> str:
    return f"{text} {uuid.uuid4().hex[:6]}"


def test_generate_shows_progress_then_images(
    page: Page, studio_url: str, emulator: httpx.Client
) -> None:
    errors = open_studio(page, studio_url)
    emulator.post("/latency", json={"latency_ms": 700})
    prompt = unique("a lighthouse at dusk")
    card = generate(page, prompt, count=2)
    expect(card.get_by_test_id("skeleton").first).to_be_visible()
    expect(page.get_by_test_id("active-task").filter(has_text=prompt)).to_have_count(1)
    expect(card.get_by_test_id("gallery-image")).to_have_count(2, timeout=20_000)
    expect(card.get_by_test_id("task-status")).to_have_text("已完成")
    expect(card.get_by_test_id("skeleton")).to_have_count(0)
    expect(card.locator("img").first).to_have_js_property("complete", True)
    assert card.locator("img").first.evaluate("img => img.naturalWidth") > 0
    expect(page.get_by_test_id("toast")).to_have_count(0)  # the card says it is done
    assert errors == []


def test_keyboard_generates_and_empty_prompt_is_refused(page: Page, studio_url: str) -> None:
    open_studio(page, studio_url)
    expect(page.get_by_test_id("generate")).to_be_disabled()
    prompt = unique("ctrl enter")
    page.get_by_test_id("model-select").select_option("seedream-3.0")
    page.get_by_test_id("prompt").fill(prompt)
    page.get_by_test_id("prompt").press("Control+Enter")
    card = page.get_by_test_id("gallery-task").filter(has_text=prompt)
    expect(card.get_by_test_id("gallery-image")).to_have_count(1, timeout=20_000)
    expect(page.get_by_test_id("prompt-count")).to_have_text(f"{len(prompt)} / 1000")


def test_lightbox_zooms_moves_and_remixes(page: Page, studio_url: str) -> None:
    open_studio(page, studio_url)
    prompt = unique("three red apples")
    card = generate(page, prompt, count=2)
    expect(card.get_by_test_id("gallery-image")).to_have_count(2, timeout=20_000)
    card.get_by_test_id("gallery-image").first.click()
    viewer = page.get_by_test_id("viewer")
    expect(viewer).to_be_visible()
    expect(page.get_by_test_id("viewer-prompt")).to_have_text(prompt)
    first_src = page.get_by_test_id("viewer-image").get_attribute("src")
    page.get_by_test_id("zoom-in").click()
    expect(page.get_by_test_id("zoom-level")).to_have_text("125%")
    page.keyboard.press("ArrowRight")
    expect(page.get_by_test_id("zoom-level")).to_have_text("100%")
    assert page.get_by_test_id("viewer-image").get_attribute("src") != first_src
    page.keyboard.press("Escape")
    expect(viewer).to_be_hidden()

    card.get_by_test_id("gallery-image").first.click()
    page.get_by_test_id("viewer-remix").click()
    expect(viewer).to_be_hidden()
    expect(page.get_by_test_id("prompt")).to_have_value(prompt)
    expect(page.get_by_test_id("model-select")).to_have_value("seedream-3.0")
    expect(page.get_by_test_id("seed-mode")).to_have_value("fixed")
    assert page.get_by_test_id("seed").input_value().isdigit()


def test_favourite_tag_and_filter_history(page: Page, studio_url: str) -> None:
    open_studio(page, studio_url)
    prompt = unique("a blue teapot")
    card = generate(page, prompt)
    expect(card.get_by_test_id("gallery-image")).to_have_count(1, timeout=20_000)
    card.get_by_test_id("gallery-image").click()
    page.get_by_test_id("viewer-favorite").click()
    expect(page.get_by_test_id("viewer-favorite")).to_have_attribute("aria-pressed", "true")
    tag = "hero-" + uuid.uuid4().hex[:4]
    page.get_by_test_id("tag-input").fill(tag)
    page.get_by_test_id("tag-input").press("Enter")
    expect(page.get_by_test_id("viewer-tags")).to_contain_text(tag)
    page.keyboard.press("Escape")

    page.get_by_test_id("tab-history").click()
    page.get_by_test_id("filter-tag").select_option(tag)
    items = page.get_by_test_id("history-item")
    expect(items).to_have_count(1)
    expect(items.first).to_contain_text(prompt)
    page.get_by_test_id("filter-tag").select_option("")
    page.get_by_test_id("filter-favorite").check()
    expect(items.filter(has_text=prompt)).to_have_count(1)


def test_search_history_by_prompt_text(page: Page, studio_url: str) -> None:
    open_studio(page, studio_url)
    marker = uuid.uuid4().hex[:8]
    for subject in ("walrus", "giraffe"):
        card = generate(page, f"{subject} {marker}")
        expect(card.get_by_test_id("gallery-image")).to_have_count(1, timeout=20_000)
    page.get_by_test_id("tab-history").click()
    page.get_by_test_id("search").fill(f"giraffe {marker}")
    items = page.get_by_test_id("history-item")
    expect(items).to_have_count(1)
    expect(items.first).to_contain_text("giraffe")
    page.get_by_test_id("search").fill(marker)
    expect(items).to_have_count(2)


def test_batch_download_zip(page: Page, studio_url: str) -> None:
    open_studio(page, studio_url)
    prompt = unique("zip me")
    card = generate(page, prompt, count=3)
    expect(card.get_by_test_id("gallery-image")).to_have_count(3, timeout=20_000)
    page.get_by_test_id("tab-history").click()
    item = page.get_by_test_id("history-item").filter(has_text=prompt)
    item.get_by_test_id("select-task").check()
    expect(page.get_by_test_id("selection-bar")).to_contain_text("已选 3 张")
    with page.expect_download() as info:
        page.get_by_test_id("download-zip").click()
    download = info.value
    assert download.suggested_filename.endswith(".zip")
    with zipfile.ZipFile(io.BytesIO(open(download.path(), "rb").read())) as archive:
        names = archive.namelist()
        assert len(names) == 3 and all(re.fullmatch(r"volcimage-[\w-]+\.jpg", n) for n in names)
        assert archive.testzip() is None


def test_delete_with_undo(page: Page, studio_url: str) -> None:
    open_studio(page, studio_url)
    prompt = unique("delete me maybe")
    card = generate(page, prompt)
    expect(card.get_by_test_id("gallery-image")).to_have_count(1, timeout=20_000)
    page.get_by_test_id("tab-history").click()
    item = page.get_by_test_id("history-item").filter(has_text=prompt)
    item.get_by_test_id("delete-task").click()
    expect(item).to_have_count(0)
    page.get_by_test_id("toast").filter(has_text="已删除").get_by_test_id("toast-action").click()
    expect(item).to_have_count(1)
    page.reload()
    page.get_by_test_id("tab-history").click()
    expect(page.get_by_test_id("history-item").filter(has_text=prompt)).to_have_count(1)


def test_cancel_a_running_task(page: Page, studio_url: str, emulator: httpx.Client) -> None:
    open_studio(page, studio_url)
    emulator.post("/latency", json={"latency_ms": 4000})
    prompt = unique("a slow mountain")
    card = generate(page, prompt, count=4)
    active = page.get_by_test_id("active-task").filter(has_text=prompt)
    active.get_by_test_id("cancel").click()
    expect(card.get_by_test_id("task-status")).to_have_text("已取消", timeout=20_000)
    expect(active).to_have_count(0)


def test_prompts_are_text_never_html(page: Page, studio_url: str) -> None:
    open_studio(page, studio_url)
    hostile = '<img src=x onerror="window.pwned=1"><script>window.pwned=2</script><b>bold</b>'
    card = generate(page, hostile)
    expect(card.get_by_test_id("gallery-image")).to_have_count(1, timeout=20_000)
    expect(card.get_by_test_id("task-prompt")).to_have_text(hostile)
    assert card.locator("b").count() == 0
    page.get_by_test_id("tab-history").click()
    expect(page.get_by_test_id("history-prompt").filter(has_text=hostile)).to_have_count(1)
    card.get_by_test_id("gallery-image").click()
    expect(page.get_by_test_id("viewer-prompt")).to_have_text(hostile)
    assert page.evaluate("window.pwned") is None


def test_theme_and_language_switch_and_persist(page: Page, studio_url: str) -> None:
    open_studio(page, studio_url)
    html = page.locator("html")
    page.get_by_test_id("theme-toggle").click()  # system -> light
    expect(html).not_to_have_class(re.compile(r"\bdark\b"))
    page.get_by_test_id("theme-toggle").click()  # light -> dark
    expect(html).to_have_class(re.compile(r"\bdark\b"))
    page.get_by_test_id("lang-toggle").click()
    expect(page.get_by_test_id("generate")).to_contain_text("Generate")
    expect(html).to_have_attribute("lang", "en")
    page.reload()
    expect(html).to_have_class(re.compile(r"\bdark\b"))
    expect(page.get_by_test_id("generate")).to_contain_text("Generate")
    page.keyboard.press("?")
    expect(page.get_by_test_id("help")).to_be_visible()
    expect(page.get_by_test_id("help")).to_contain_text("Keyboard shortcuts")
    page.keyboard.press("Escape")
    expect(page.get_by_test_id("help")).to_be_hidden()


def test_phone_layout_uses_tabs(page: Page, studio_url: str) -> None:
    page.set_viewport_size({"width": 390, "height": 844})
    open_studio(page, studio_url)
    expect(page.get_by_test_id("phone-tabs")).to_be_visible()
    expect(page.get_by_test_id("params-panel")).to_be_visible()
    expect(page.get_by_test_id("gallery")).to_be_hidden()
    # the generate bar closes the panel, whether it scrolls (nothing under it shows below it)
    # or not (no gap below it)
    for height in (844, 1400):
        page.set_viewport_size({"width": 390, "height": height})
        panel = page.get_by_test_id("params-panel").bounding_box()
        bar = page.get_by_test_id("generate-bar").bounding_box()
        assert panel and bar
        assert abs(bar["y"] + bar["height"] - panel["y"] - panel["height"]) < 0.5, height
    page.set_viewport_size({"width": 390, "height": 844})
    prompt = unique("a phone picture")
    page.get_by_test_id("model-select").select_option("seedream-3.0")
    page.get_by_test_id("prompt").fill(prompt)
    page.get_by_test_id("generate").click()
    expect(page.get_by_test_id("gallery")).to_be_visible()
    expect(page.get_by_test_id("params-panel")).to_be_hidden()
    card = page.get_by_test_id("gallery-task").filter(has_text=prompt)
    expect(card.get_by_test_id("gallery-image")).to_have_count(1, timeout=20_000)
    page.get_by_test_id("phone-tab-tasks").click()
    expect(page.get_by_test_id("side-panel")).to_be_visible()
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390


def test_first_load_is_small(page: Page, studio_url: str) -> None:
    """The page's HTML, CSS, scripts and first API answers, compressed as sent: under 150 KB."""
    open_studio(page, studio_url)  # returns once models, info, tasks, tags and history are in
    entries = page.evaluate(
        """performance.getEntriesByType('navigation')
            .concat(performance.getEntriesByType('resource'))
            .filter(e => e.initiatorType !== 'img')
            .map(e => [e.name, e.transferSize])"""
    )
    total = sum(size for _, size in entries)
    print(f"first load: {len(entries)} responses, {total / 1024:.1f} KB transferred")
    assert len(entries) >= 8 and 0 < total < 150 * 1024, entries


def test_reference_images_by_file_and_from_the_viewer(page: Page, studio_url: str) -> None:
    open_studio(page, studio_url)
    page.get_by_test_id("model-select").select_option("seededit-3.0")
    expect(page.get_by_test_id("references")).to_be_visible()
    expect(page.get_by_test_id("size-presets")).to_be_hidden()
    picture = render_image("a red bicycle", 4, 600, 800, fmt="png")
    page.get_by_test_id("reference-input").set_input_files(
        files=[{"name": "bike.png", "mimeType": "image/png", "buffer": picture}]
    )
    expect(page.get_by_test_id("reference")).to_have_count(1)
    prompt = unique("make it snow")
    page.get_by_test_id("prompt").fill(prompt)
    page.get_by_test_id("generate").click()
    card = page.get_by_test_id("gallery-task").filter(has_text=prompt)
    expect(card.get_by_test_id("gallery-image")).to_have_count(1, timeout=20_000)

    card.get_by_test_id("gallery-image").click()
    page.get_by_test_id("viewer-reference").click()  # seededit takes one: it replaces the first
    expect(page.get_by_test_id("viewer")).to_be_hidden()
    expect(page.get_by_test_id("reference")).to_have_count(1)
    page.get_by_test_id("model-select").select_option("seedream-4.0")
    expect(page.get_by_test_id("size-presets")).to_be_visible()
    expect(page.get_by_test_id("reference")).to_have_count(1)


def test_group_images_appear_one_by_one(
    page: Page, studio_url: str, emulator: httpx.Client
) -> None:
    open_studio(page, studio_url)
    emulator.post("/latency", json={"latency_ms": 600})
    page.get_by_test_id("model-select").select_option("seedream-4.0")
    page.get_by_test_id("group").check()
    prompt = unique("a four panel comic")
    page.get_by_test_id("prompt").fill(prompt)
    page.get_by_test_id("count").fill("6")
    # every state the card goes through, as the page renders it: polling from here may miss
    # the one with a single image when the machine is busy
    page.evaluate(
        """prompt => {
            window.cardStates = [];
            new MutationObserver(() => {
                const card = [...document.querySelectorAll("[data-testid=gallery-task]")]
                    .find((c) => c.textContent.includes(prompt));
                if (!card) return;
                const state = [
                    card.querySelectorAll("[data-testid=gallery-image]").length,
                    card.querySelector("[data-testid=task-status]")?.textContent.trim() ?? "",
                ];
                const last = window.cardStates.at(-1);
                const changed = !last || last[0] !== state[0] || last[1] !== state[1];
                if (changed) window.cardStates.push(state);
            }).observe(document.body, { subtree: true, childList: true, characterData: true });
        }""",
        prompt,
    )
    page.get_by_test_id("generate").click()
    card = page.get_by_test_id("gallery-task").filter(has_text=prompt)
    expect(card.get_by_test_id("gallery-image")).to_have_count(6, timeout=40_000)
    expect(card.get_by_test_id("task-status")).to_have_text("已完成")
    states = page.evaluate("window.cardStates")
    counts = [count for count, _ in states]
    assert counts == sorted(counts), states  # images are only ever added
    # the first image shows while the rest are still coming
    assert any(count == 1 and status != "已完成" for count, status in states), states


def test_a_group_that_came_short_says_how_many_images_it_has(
    page: Page, studio_url: str, emulator: httpx.Client
) -> None:
    open_studio(page, studio_url)
    emulator.post("/faults", json={"faults": ["group_short"]})  # the group ends an image short
    page.get_by_test_id("model-select").select_option("seedream-4.0")
    page.get_by_test_id("group").check()
    prompt = unique("a three panel story")
    page.get_by_test_id("prompt").fill(prompt)
    page.get_by_test_id("count").fill("3")
    page.get_by_test_id("generate").click()
    card = page.get_by_test_id("gallery-task").filter(has_text=prompt)
    expect(card.get_by_test_id("task-status")).to_have_text("部分完成 2/3", timeout=20_000)
    expect(card.get_by_test_id("gallery-image")).to_have_count(2)
    expect(card.get_by_test_id("skeleton")).to_have_count(0)
    expect(card.get_by_test_id("task-error")).to_have_text("只生成了部分图片")
    expect(card.get_by_test_id("task-error-detail")).to_contain_text("2 of 3 images made")


def test_history_loads_more_as_it_scrolls(page: Page, studio_url: str) -> None:
    marker = uuid.uuid4().hex[:8]
    with httpx.Client(base_url=studio_url) as client:
        ids = [
            client.post(
                "/api/v1/generate", json={"prompt": f"scroll {marker} {i}", "model": "seedream-3.0"}
            ).json()["task_id"]
            for i in range(25)
        ]
    open_studio(page, studio_url)
    page.get_by_test_id("tab-history").click()
    with page.expect_response(lambda r: f"q=scroll+{marker}" in r.url):  # after the debounce
        page.get_by_test_id("search").fill(f"scroll {marker}")
    items = page.get_by_test_id("history-item")
    expect(items).to_have_count(20)  # the first page of the search
    items.last.scroll_into_view_if_needed()
    expect(items).to_have_count(25)  # the next page, fetched when the end came into view
    assert len(ids) == 25


def test_save_a_template_then_apply_it_to_an_empty_form(page: Page, studio_url: str) -> None:
    errors = open_studio(page, studio_url)
    name = unique("Lanterns")
    page.get_by_test_id("model-select").select_option("seedream-3.0")
    page.get_by_test_id("prompt").fill("paper lanterns over a river at dusk")
    page.get_by_test_id("count").fill("3")
    page.get_by_test_id("size-presets").locator("[title='1280x720']").click()
    page.get_by_test_id("seed-mode").select_option("fixed")
    page.get_by_test_id("seed").fill("4242")
    page.get_by_test_id("template-save").click()
    page.get_by_test_id("template-name").fill(name)
    page.get_by_test_id("template-name").press("Enter")
    expect(page.get_by_test_id("toast").filter(has_text=name)).to_be_visible()
    expect(page.get_by_test_id("template-form")).to_be_hidden()
    expect(page.get_by_test_id("gallery-task").filter(has_text="paper lanterns")).to_have_count(0)

    page.reload()
    expect(page.locator("[data-ready=true]")).to_have_count(1)
    expect(page.get_by_test_id("prompt")).to_have_value("")
    select = page.get_by_test_id("template-select")
    select.select_option(label=name)
    expect(page.get_by_test_id("prompt")).to_have_value("paper lanterns over a river at dusk")
    expect(page.get_by_test_id("model-select")).to_have_value("seedream-3.0")
    expect(page.get_by_test_id("count")).to_have_value("3")
    size = page.get_by_test_id("size-presets").locator("[title='1280x720']")
    expect(size).to_have_attribute("aria-pressed", "true")
    expect(page.get_by_test_id("seed-mode")).to_have_value("fixed")
    expect(page.get_by_test_id("seed")).to_have_value("4242")
    page.get_by_test_id("template-delete").click()
    expect(page.get_by_test_id("toast").filter(has_text="已删除模板")).to_be_visible()
    expect(select.locator("option", has_text=name)).to_have_count(0)
    assert errors == []


def test_events_it_missed_are_caught_up(page: Page, studio_url: str) -> None:
    """When the server says events were lost (its relay reconnected, the page read too slowly),
    the page reads the newest tasks again: a task it heard nothing of appears, completed, one
    deleted meanwhile goes, and the gallery stays newest first."""
    missed = 'retry: 200\nevent: task\ndata: {"type": "events.missed"}\n\n'
    streams: list[str] = []
    told = False

    def events(route: Route) -> None:
        # the first stream says ready; the next ones (the page reconnects every 200 ms) nothing,
        # then only that events were missed, so nothing else can tell the page
        body = "retry: 200\n\n" if streams else "retry: 200\nevent: ready\ndata: {}\n\n"
        streams.append(missed if told else body)
        route.fulfill(status=200, headers={"Content-Type": "text/event-stream"}, body=streams[-1])

    with httpx.Client(base_url=studio_url) as client:

        def make(prompt: str) -> str:
            body = {"prompt": prompt, "model": "seedream-3.0"}
            task_id: str = client.post("/api/v1/generate", json=body).json()["task_id"]
            wait_task(studio_url, task_id)
            return task_id

        doomed_prompt, later = unique("deleted while away"), unique("heard of only later")
        for n in range(13):  # more than the gallery's first 12: older ones are only in history
            client.post("/api/v1/generate", json={"prompt": f"filler {n}", "model": "seedream-3.0"})
        doomed = make(doomed_prompt)
        page.route("**/api/v1/events", events)
        page.goto(studio_url)
        expect(page.locator("[data-ready=true]")).to_have_count(1)
        cards = page.get_by_test_id("gallery-task")
        expect(cards.filter(has_text=doomed_prompt)).to_have_count(1)
        assert client.delete(f"/api/v1/task/{doomed}").status_code == 204
        make(later)
        told = True
        card = cards.filter(has_text=later)
        expect(card.get_by_test_id("task-status")).to_have_text("已完成")
        expect(card.get_by_test_id("gallery-image")).to_have_count(1)
        expect(cards.filter(has_text=doomed_prompt)).to_have_count(0)
        newest = [t["task_id"] for t in client.get("/api/v1/tasks?limit=200").json()["items"]]
    shown = [card.get_attribute("data-task-id") for card in cards.all()]
    assert shown == [task_id for task_id in newest if task_id in shown]
    assert missed in streams
