"""What a new user meets on the page: why Generate is off, refusals and errors in the page's
language, few toasts and never over the viewer's controls, references by drag and from any
model, the phone's own words, and a layout that holds in both languages."""

from __future__ import annotations

import json
import math
import random
import re
import time
import uuid
from typing import Any

import httpx
import pytest
from playwright.sync_api import Locator, Page, Route, expect

from tests.e2e.test_studio import generate, open_studio, unique
from tests.error_codes import produced_codes
from tests.support import jpeg_claiming, local, wait_task
from volcimage.catalog.models import SizeRule

pytestmark = pytest.mark.e2e

CJK = re.compile(r"[\u4e00-\u9fff]")


def studio(page: Page) -> Any:
    """Calls into the page's component, for what a click cannot reach (its i18n tables)."""
    return page.evaluate


def toasts(page: Page) -> Locator:
    return page.get_by_test_id("toast")


# ---- 6: why Generate is off -------------------------------------------------------------------


def test_a_disabled_generate_button_says_why_and_ctrl_enter_says_the_same(
    page: Page, studio_url: str
) -> None:
    open_studio(page, studio_url)
    reason = page.get_by_test_id("generate-reason")
    expect(reason).to_have_text("写下提示词后即可生成")
    page.get_by_test_id("model-select").select_option("seedream-3.0")
    page.get_by_test_id("prompt").fill("长" * 10_000)
    expect(page.get_by_test_id("generate")).to_be_disabled()
    too_long = "提示词过长：10000 字，这个模型最多 1000 字"
    expect(reason).to_have_text(too_long)
    page.get_by_test_id("prompt").press("Control+Enter")
    expect(toasts(page).filter(has_text=too_long)).to_have_count(1)
    expect(toasts(page).filter(has_text="请先写下提示词")).to_have_count(0)

    page.get_by_test_id("prompt").fill("make it snow")
    page.get_by_test_id("model-select").select_option("seededit-3.0")
    expect(page.get_by_test_id("generate")).to_be_disabled()
    expect(reason).to_have_text("这个模型需要 1 张参考图")
    page.get_by_test_id("lang-toggle").click()
    expect(reason).to_have_text("This model needs 1 reference image(s)")
    page.get_by_test_id("model-select").select_option("seedream-3.0")
    expect(reason).to_be_hidden()
    expect(page.get_by_test_id("generate")).to_be_enabled()


# ---- 7: upload refusals -----------------------------------------------------------------------


def drop_file_in_page(page: Page, name: str, size: int) -> None:
    """Drops a file made in the page (91 MB need not cross the wire to the browser)."""
    page.get_by_test_id("reference-drop").evaluate(
        """(zone, [name, size]) => {
            const transfer = new DataTransfer();
            transfer.items.add(new File([new Uint8Array(size)], name, { type: "image/jpeg" }));
            const init = { dataTransfer: transfer, bubbles: true, cancelable: true };
            zone.dispatchEvent(new DragEvent("drop", init));
        }""",
        [name, size],
    )


def test_upload_refusals_say_the_size_in_mb_and_the_pixel_limit_in_the_pages_language(
    page: Page, studio_url: str
) -> None:
    open_studio(page, studio_url)
    uploads: list[str] = []
    page.on("request", lambda r: uploads.append(r.url) if "/api/v1/uploads" in r.url else None)
    drop_file_in_page(page, "holiday.jpg", 91 * 1024 * 1024)
    expect(toasts(page).filter(has_text="holiday.jpg：文件 91 MB，最大 10 MB")).to_have_count(1)
    assert uploads == [], "the page refuses it itself, before sending 91 MB"

    big = {"name": "pano.jpg", "mimeType": "image/jpeg", "buffer": jpeg_claiming(12000, 12000)}
    page.get_by_test_id("reference-input").set_input_files(files=[big])
    said = "pano.jpg：图片像素过多：14400 万像素，最多 6000×6000（3600 万像素）"
    expect(toasts(page).filter(has_text=said)).to_have_count(1)
    expect(page.get_by_test_id("reference")).to_have_count(0)

    page.get_by_test_id("lang-toggle").click()
    page.get_by_test_id("reference-input").set_input_files(files=[big])
    said = "pano.jpg: Too many pixels: 144 megapixels; at most 6000×6000 (36 megapixels)"
    expect(toasts(page).filter(has_text=said)).to_have_count(1)
    drop_file_in_page(page, "holiday.jpg", 91 * 1024 * 1024)
    expect(toasts(page).filter(has_text="The file is 91 MB; at most 10 MB")).to_have_count(1)


# ---- 9: every error code in words -------------------------------------------------------------


def test_the_source_scan_finds_the_codes_it_must() -> None:
    """The scan below is only as good as what it finds: these come from every kind of place."""
    codes, shapes = produced_codes()
    expected = {
        "validation_error",  # a class attribute
        "quota_exceeded",  # a keyword
        "csrf_failed",  # a middleware's _refuse
        "method_not_allowed",  # a mapping in a handler
        "http_error",  # its default
        "rate_limit_exceeded",  # a literal body
        "TooManyAttempts",  # the runner's _finish
        "partial",  # an _finish's conditional
        "NoImage",
        "ImageRefused",  # an `or` default
        "StreamError",
        "StorageError",  # _error_code
        "InternalError",
        "cancelled",
        "ReferenceGone",
        "ResultTooLarge",
        "MalformedResponse",
        "Timeout",
        "OutputImageSensitiveContentDetected",  # the emulators
        "ModelAccountIpmRateLimitExceeded",
        "SignatureDoesNotMatch",
        "50412",
        "50511",
    }
    assert expected <= codes, expected - codes
    assert {"Job", "HTTP"} <= shapes
    assert "Code" not in codes and "message" not in codes  # keys read, not codes made


def test_every_error_code_the_python_code_can_produce_has_chinese_and_english_words(
    page: Page, studio_url: str
) -> None:
    open_studio(page, studio_url)
    codes, shapes = produced_codes()
    samples = sorted(codes) + [f"{shape}Expired" for shape in shapes if shape == "Job"]
    samples += [f"{shape}503" for shape in shapes if shape == "HTTP"]
    samples += [f"{shape}418" for shape in shapes if shape == "HTTP"]
    unknown = sorted(shapes - {"Job", "HTTP"})
    assert not unknown, f"new f-string code shapes the page has no family for: {unknown}"
    words = studio(page)(
        """codes => codes.map(code => {
            const key = window.volcI18n.errorKey(code);
            const d = window.volcI18n.dictionaries;
            return [code, key, d["zh-CN"][key], d.en[key]];
        })""",
        samples,
    )
    missing = [code for code, key, _zh, _en in words if key == "err.unknown"]
    assert not missing, f"error codes with no words of their own on the page: {missing}"
    for code, key, zh, en in words:
        assert zh and CJK.search(zh), (code, key, zh)
        assert en and not CJK.search(en), (code, key, en)


def test_a_failed_task_speaks_chinese_keeps_its_code_and_request_id_and_no_grey_tiles(
    page: Page, studio_url: str, emulator: httpx.Client
) -> None:
    errors = open_studio(page, studio_url)
    # asked again once (a new sample may pass), refused again: final
    emulator.post("/faults", json={"faults": ["sensitive", "sensitive"]})
    prompt = unique("a refused picture")
    card = generate(page, prompt, count=1)
    expect(card.get_by_test_id("task-status")).to_have_text("失败", timeout=20_000)
    expect(card.get_by_test_id("task-error")).to_have_text("生成的图片未通过内容审核，请调整提示词")
    detail = card.get_by_test_id("task-error-detail")
    expect(detail).to_contain_text("错误码 OutputImageSensitiveContentDetected")
    expect(detail).to_contain_text("Request ID")
    expect(card.get_by_test_id("skeleton")).to_have_count(0)
    expect(toasts(page)).to_have_count(0)  # the card says it
    page.get_by_test_id("lang-toggle").click()
    expect(card.get_by_test_id("task-error")).to_have_text(
        "The generated image did not pass content review; adjust the prompt"
    )
    assert errors == []


def test_a_cancelled_task_keeps_no_grey_tiles(
    page: Page, studio_url: str, emulator: httpx.Client
) -> None:
    open_studio(page, studio_url)
    emulator.post("/latency", json={"latency_ms": 4000})
    prompt = unique("a cancelled range")
    card = generate(page, prompt, count=4)
    expect(card.get_by_test_id("skeleton")).to_have_count(4)
    page.get_by_test_id("active-task").filter(has_text=prompt).get_by_test_id("cancel").click()
    expect(card.get_by_test_id("task-status")).to_have_text("已取消", timeout=20_000)
    expect(card.get_by_test_id("skeleton")).to_have_count(0)


def test_an_api_error_is_said_in_the_pages_language_with_the_servers_text_as_detail(
    page: Page, studio_url: str
) -> None:
    open_studio(page, studio_url)
    card = generate(page, unique("a favourite that fails"))
    expect(card.get_by_test_id("gallery-image")).to_have_count(1, timeout=20_000)

    def unavailable(route: Route) -> None:
        body = {"error": "service_unavailable", "message": "The database is busy; try again"}
        route.fulfill(status=503, content_type="application/json", body=json.dumps(body))

    page.route("**/api/v1/images/*", unavailable)
    card.get_by_test_id("gallery-image").hover()
    card.get_by_test_id("favorite").click()
    toast = toasts(page).filter(has_text="服务暂时不可用（数据库或存储），请稍后再试")
    expect(toast).to_have_count(1)
    expect(toast.get_by_test_id("toast-detail")).to_have_text("The database is busy; try again")


# ---- 10: few toasts, never over the viewer's controls -----------------------------------------


def overlaps(a: dict[str, float], b: dict[str, float]) -> bool:
    return not (
        a["x"] + a["width"] <= b["x"]
        or b["x"] + b["width"] <= a["x"]
        or a["y"] + a["height"] <= b["y"]
        or b["y"] + b["height"] <= a["y"]
    )


def test_no_toast_for_what_the_card_shows_and_at_most_three(page: Page, studio_url: str) -> None:
    open_studio(page, studio_url)
    card = generate(page, unique("a quiet success"), count=1)
    expect(card.get_by_test_id("task-status")).to_have_text("已完成", timeout=20_000)
    expect(toasts(page)).to_have_count(0)  # neither "queued" nor "done"

    marker = uuid.uuid4().hex[:8]
    with httpx.Client(base_url=studio_url) as client:
        for i in range(5):
            body = {"prompt": f"burst {marker} {i}", "model": "seedream-3.0"}
            wait_task(studio_url, client.post("/api/v1/generate", json=body).json()["task_id"])
    page.get_by_test_id("tab-history").click()
    page.get_by_test_id("search").fill(marker)
    items = page.get_by_test_id("history-item")
    expect(items).to_have_count(5)
    for _ in range(5):  # five deletions, each with its undo toast
        items.first.get_by_test_id("delete-task").click()
    expect(items).to_have_count(0)
    expect(toasts(page)).to_have_count(3)
    side = page.get_by_test_id("side-panel").bounding_box()
    assert side
    for toast in toasts(page).all():
        box = toast.bounding_box()
        assert box and not overlaps(box, side), "a toast over the task list"


@pytest.mark.parametrize("size", [(390, 844), (1440, 900)], ids=["phone", "desktop"])
def test_toasts_never_cover_the_viewers_controls(
    page: Page, studio_url: str, size: tuple[int, int]
) -> None:
    page.set_viewport_size({"width": size[0], "height": size[1]})
    open_studio(page, studio_url)
    prompt = unique("a viewer with news")
    page.get_by_test_id("model-select").select_option("seedream-3.0")
    page.get_by_test_id("prompt").fill(prompt)
    page.get_by_test_id("count").fill("2")
    page.get_by_test_id("generate").click()
    card = page.get_by_test_id("gallery-task").filter(has_text=prompt)
    expect(card.get_by_test_id("gallery-image")).to_have_count(2, timeout=20_000)
    card.get_by_test_id("gallery-image").first.click()
    viewer = page.get_by_test_id("viewer")
    expect(viewer).to_be_visible()

    def failing(route: Route) -> None:
        body = {"error": "service_unavailable", "message": "The database is busy; " * 4}
        route.fulfill(status=503, content_type="application/json", body=json.dumps(body))

    page.route("**/api/v1/images/*", failing)
    page.get_by_test_id("viewer-compare").click()  # an info toast
    page.get_by_test_id("viewer-favorite").click()  # an error toast with a long detail
    page.get_by_test_id("viewer-favorite").click()
    # measured once the second has replaced the first (not as one element gives way)
    # (polled from here: wait_for_function would eval the check, which the page's CSP refuses)
    errors = "() => Alpine.store('toasts').list.filter((t) => t.kind === 'error').length"
    deadline = time.monotonic() + 120  # a safety net for a busy machine
    while page.evaluate(errors) < 2:
        assert time.monotonic() < deadline, "the second error toast never came"
        page.wait_for_timeout(50)
    expect(toasts(page)).to_have_count(1)  # only the newest while the viewer is open
    toast = toasts(page).first.bounding_box()
    assert toast
    controls = viewer.locator("button:visible, a:visible, input:visible")
    assert controls.count() >= 12
    for control in controls.all():
        box = control.bounding_box()
        assert box and not overlaps(toast, box), control.evaluate("e => e.outerHTML")


# ---- 11, 12: references -----------------------------------------------------------------------


def test_use_as_reference_on_seedream_3_says_it_switched_model(page: Page, studio_url: str) -> None:
    open_studio(page, studio_url)
    card = generate(page, unique("a model that takes no references"))
    expect(card.get_by_test_id("gallery-image")).to_have_count(1, timeout=20_000)
    card.get_by_test_id("gallery-image").click()
    page.get_by_test_id("viewer-reference").click()
    said = "Seedream 3.0 不能使用参考图，已切换到 Seedream 4.0 并加入参考图"
    expect(toasts(page).filter(has_text=said)).to_have_count(1)
    expect(page.get_by_test_id("model-select")).to_have_value("seedream-4.0")
    expect(page.get_by_test_id("reference")).to_have_count(1)


def test_drag_a_gallery_image_onto_the_references(page: Page, studio_url: str) -> None:
    errors = open_studio(page, studio_url)
    card = generate(page, unique("a picture to drag"))
    expect(card.get_by_test_id("gallery-image")).to_have_count(1, timeout=20_000)
    page.get_by_test_id("model-select").select_option("seedream-4.0")
    image = card.get_by_test_id("gallery-image")
    image.drag_to(page.get_by_test_id("reference-drop"))
    expect(page.get_by_test_id("reference")).to_have_count(1)
    src = page.get_by_test_id("reference").locator("img").get_attribute("src")
    assert src == card.locator("img").get_attribute("src")

    prompt = unique("made from a dragged picture")
    page.get_by_test_id("prompt").fill(prompt)
    page.get_by_test_id("generate").click()
    made = page.get_by_test_id("gallery-task").filter(has_text=prompt)
    expect(made.get_by_test_id("gallery-image")).to_have_count(1, timeout=20_000)
    task_id = made.get_attribute("data-task-id")
    task = local.get(f"{studio_url}/api/v1/task/{task_id}").json()
    assert [r["kind"] for r in task["params"]["reference_images"]] == ["image"]
    assert errors == []


# ---- 14: the phone's own words ----------------------------------------------------------------


def empty_gallery(route: Route) -> None:
    route.fulfill(status=200, content_type="application/json", body='{"items": []}')


def test_the_phone_says_where_the_prompt_is_and_shows_no_ctrl_enter_hint(
    page: Page, studio_url: str
) -> None:
    page.route("**/api/v1/tasks?limit=12", empty_gallery)
    page.set_viewport_size({"width": 390, "height": 844})
    open_studio(page, studio_url)
    expect(page.get_by_test_id("generate-kbd")).to_be_hidden()
    page.get_by_test_id("phone-tab-gallery").click()
    empty = page.get_by_test_id("gallery-empty")
    expect(empty).to_be_visible()
    expect(page.get_by_test_id("gallery-empty-phone")).to_contain_text("在「参数」页写下提示词")
    shown = empty.inner_text()  # what shows, not the desktop's hidden line
    assert "左侧" not in shown and "Ctrl" not in shown, shown
    empty.get_by_role("button").first.click()  # an example: the prompt's tab comes with it
    expect(page.get_by_test_id("params-panel")).to_be_visible()
    expect(page.get_by_test_id("prompt")).not_to_have_value("")

    page.set_viewport_size({"width": 1440, "height": 900})
    expect(page.get_by_test_id("generate-kbd")).to_be_visible()


# ---- 15: polish -------------------------------------------------------------------------------


def test_sizes_by_shape_then_size_and_the_cost_says_one_image(page: Page, studio_url: str) -> None:
    open_studio(page, studio_url)
    chips = page.get_by_test_id("size-presets").locator("[title]")
    titles = chips.evaluate_all("cs => cs.map(c => c.title)")
    sizes = [tuple(map(int, t.split("x"))) for t in titles]
    assert sizes == sorted(sizes, key=lambda s: (s[0] / s[1], s[0] * s[1])), sizes
    squares = [i for i, (w, h) in enumerate(sizes) if w == h]
    assert squares == list(range(squares[0], squares[0] + len(squares))), "1:1 chips together"
    page.get_by_test_id("lang-toggle").click()
    expect(page.get_by_test_id("cost")).to_have_text("Estimated cost ¥0.20 (1 image)")
    page.get_by_test_id("count").fill("3")
    expect(page.get_by_test_id("cost")).to_have_text("Estimated cost ¥0.60 (3 images)")


def _sizes_to_try(rule: dict[str, Any]) -> list[tuple[int, int]]:
    """Sizes at and around each bound of the rule, and a spread in between."""
    if rule["mode"] == "sides":
        sides = [rule["min_side"] - 1, rule["min_side"], rule["max_side"], rule["max_side"] + 1]
    else:
        low, high = math.sqrt(rule["min_pixels"]), math.sqrt(rule["max_pixels"])
        sides = [math.floor(low) - 1, math.ceil(low), math.floor(high), math.ceil(high) + 1]
    sizes = [(w, h) for w in sides for h in sides]
    for bound in (rule.get("max_ratio"), 1 / rule["min_ratio"] if rule.get("min_ratio") else None):
        if bound:
            for h in (256, 512, 1024):
                sizes += [(math.floor(h * bound) + d, h) for d in (-1, 0, 1)]
                sizes += [(h, math.floor(h * bound) + d) for d in (-1, 0, 1)]
    pick = random.Random(rule["mode"])
    return sizes + [(pick.randint(1, 8192), pick.randint(1, 8192)) for _ in range(200)]


def test_the_pages_custom_size_check_agrees_with_the_servers_rule_for_every_model(
    page: Page, studio_url: str
) -> None:
    open_studio(page, studio_url)
    models = local.get(f"{studio_url}/api/v1/models").json()["models"]
    checked = 0
    for model in models:
        rule = model["size_rule"]
        if rule["mode"] == "adaptive":
            continue  # no size is asked for
        sizes = _sizes_to_try(rule)
        said = page.evaluate(
            """([id, sizes]) => {
                const params = Alpine.$data(document.querySelector("[data-testid=params-panel]"));
                params.form.model = id;
                params.form.custom = true;
                return sizes.map(([w, h]) => {
                    params.form.width = w;
                    params.form.height = h;
                    return params.checkCustomSize();
                });
            }""",
            [model["id"], sizes],
        )
        server = SizeRule(**rule)
        for (w, h), words in zip(sizes, said, strict=True):
            allowed = server.check(w, h) is None
            assert (words == "") == allowed, f"{model['id']} {w}x{h}: page {words!r}"
        checked += 1
    assert checked >= 10, "every model that is asked for a size"


def test_panels_keep_their_widths_when_the_language_changes(page: Page, studio_url: str) -> None:
    """At the narrowest desktop width, with history's selection bar (longer in English) open."""
    page.set_viewport_size({"width": 1024, "height": 800})
    open_studio(page, studio_url)
    prompt = unique("a picture to select")
    card = generate(page, prompt)
    expect(card.get_by_test_id("gallery-image")).to_have_count(1, timeout=20_000)
    page.get_by_test_id("tab-history").click()
    item = page.get_by_test_id("history-item").filter(has_text=prompt)
    item.get_by_test_id("select-task").check()
    bar = page.get_by_test_id("selection-bar")
    expect(bar).to_be_visible()

    def widths() -> list[float]:
        ids = ("params-panel", "gallery", "side-panel")
        width = "e => e.getBoundingClientRect().width"
        return [page.get_by_test_id(i).evaluate(width) for i in ids]

    chinese = widths()
    page.get_by_test_id("lang-toggle").click()
    expect(bar).to_contain_text("Download ZIP")
    assert widths() == chinese
    assert chinese == pytest.approx([1024 * 0.3, 1024 * 0.5, 1024 * 0.2], abs=1)
    assert bar.evaluate("e => e.scrollWidth <= e.clientWidth"), "the bar's buttons cut off"


def test_the_viewer_says_the_size_once_and_its_buttons_keep_to_one_line(
    page: Page, studio_url: str
) -> None:
    page.set_viewport_size({"width": 1440, "height": 900})
    open_studio(page, studio_url)
    card = generate(page, unique("a viewer in two languages"))
    expect(card.get_by_test_id("gallery-image")).to_have_count(1, timeout=20_000)
    card.get_by_test_id("gallery-image").click()
    meta = page.get_by_test_id("viewer-meta")
    expect(meta).to_contain_text("Seedream 3.0 · 2048×2048")
    assert meta.inner_text().count("×") == 1, meta.inner_text()
    for lang in ("zh-CN", "en"):
        if lang == "en":
            page.get_by_test_id("viewer-close").click()
            page.get_by_test_id("lang-toggle").click()
            card.get_by_test_id("gallery-image").click()
        panel = page.get_by_test_id("viewer-panel")
        buttons = panel.locator("div.grid > button, div.grid > a")  # the six actions
        favourite = page.get_by_test_id("viewer-favorite").bounding_box()
        field = page.get_by_test_id("tag-input").bounding_box()
        assert favourite and field
        assert buttons.count() == 6
        for button in buttons.all():
            box = button.bounding_box()
            assert box and box["height"] <= favourite["height"] + 0.5, (lang, button.inner_text())
        add = page.get_by_test_id("tag-add").bounding_box()  # as tall as the field beside it
        assert add and add["height"] <= field["height"] + 0.5, (lang, add)


# ---- found on the way: a catch-up that ran first after a deletion kept the deleted task -------


def test_a_task_deleted_before_the_first_catch_up_goes(page: Page, studio_url: str) -> None:
    """The gallery and history hold their own copies of a task until a catch-up shares them;
    a catch-up judged "is it still the one shown?" by the history's copy against the gallery's,
    so a task deleted before the first one stayed forever (and a suite test failed when the
    machine was slow to connect)."""
    ready = {"now": False}

    def events(route: Route) -> None:
        body = "retry: 200\nevent: ready\ndata: {}\n\n" if ready["now"] else "retry: 200\n\n"
        route.fulfill(status=200, headers={"Content-Type": "text/event-stream"}, body=body)

    with httpx.Client(base_url=studio_url) as client:
        body = {"prompt": unique("deleted before any catch-up"), "model": "seedream-3.0"}
        doomed = client.post("/api/v1/generate", json=body).json()["task_id"]
        wait_task(studio_url, doomed)
        page.route("**/api/v1/events", events)
        page.goto(studio_url)
        expect(page.locator("[data-ready=true]")).to_have_count(1)
        card = page.locator(f"[data-testid=gallery-task][data-task-id='{doomed}']")
        item = page.locator(f"[data-testid=history-item][data-task-id='{doomed}']")
        expect(card).to_have_count(1)
        expect(item).to_have_count(1)
        assert client.delete(f"/api/v1/task/{doomed}").status_code == 204
    ready["now"] = True  # connected at last: the page catches up
    expect(card).to_have_count(0)
    expect(item).to_have_count(0)
