"""Accessibility and devices: axe-core finds nothing serious, every control has a name and is
reached and used by keyboard alone, the page fits a 375 px phone, and both colour schemes are
readable. Screenshots at desktop and phone sizes go to test-results/ (look at them)."""
from __future__ import annotations

import base64
import re
from pathlib import Path

import pytest

from support import ROOT
from tests.e2e.conftest import AppPage, app_url
from tools.axe_core import axe_min_js

SIZES = {"desktop": (1280, 900), "phone": (375, 740)}
REPLY = dict(temperature=0, max_new_tokens=24)
CONTROLS = "input, textarea, select, button, summary, [tabindex]:not([tabindex='-1']), a[href]"


@pytest.fixture(scope="session")
def axe_js() -> Path:
    """axe.min.js from npm, integrity-checked, kept in the tests' cache (tools/axe_core.py)."""
    return axe_min_js()


def run_axe(page, axe_js: Path) -> list[dict]:
    """axe's violations of serious or critical impact (WCAG 2.x A/AA rules and best practices)."""
    if not page.evaluate("typeof window.axe === 'object'"):  # evaluated by the test, as the page's CSP
        page.evaluate(f"() => {{ {axe_js.read_text()}\n }}")  # allows no inline <script>
    result = page.evaluate("""async () => {
        const result = await axe.run(document, {resultTypes: ['violations']});
        return result.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,
            nodes: v.nodes.map(n => n.target.join(' ') + ': ' + n.failureSummary)}));
    }""")
    return [v for v in result if v["impact"] in ("serious", "critical")]


def rgb(css: str) -> tuple[float, ...]:
    return tuple(float(x) for x in re.findall(r"[\d.]+", css)[:3])


def contrast(a: str, b: str) -> float:
    """WCAG contrast ratio of two CSS rgb() colours."""
    def luminance(colour: str) -> float:
        channels = [c / 255 for c in rgb(colour)]
        linear = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
        return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]
    high, low = sorted((luminance(a), luminance(b)), reverse=True)
    return (high + 0.05) / (low + 0.05)


def colours(page) -> dict[str, str]:
    return page.evaluate("""() => {
        const style = selector => getComputedStyle(document.querySelector(selector));
        return {bg: style('body').backgroundColor, fg: style('body').color, muted: style('.tagline').color,
                panel: style('#log').backgroundColor};
    }""")


def distinct_colours(page, png: bytes) -> int:
    """How many colours a screenshot has (decoded by the page's own canvas)."""
    return page.evaluate("""async data => {
        const image = new Image();
        image.src = 'data:image/png;base64,' + data;
        await image.decode();
        const canvas = Object.assign(document.createElement('canvas'), {width: image.width, height: image.height});
        const context = canvas.getContext('2d');
        context.drawImage(image, 0, 0);
        const pixels = context.getImageData(0, 0, image.width, image.height).data;
        const seen = new Set();
        for (let i = 0; i < pixels.length; i += 4 * 7) seen.add((pixels[i] << 16) | (pixels[i + 1] << 8) | pixels[i + 2]);
        return seen.size;
    }""", base64.b64encode(png).decode("ascii"))


@pytest.fixture(scope="module")
def booted_tiny(browser, app_server, hub):
    """One page with the tiny model loaded, shared by the sizes and colour schemes below."""
    context = browser.new_context()
    app = AppPage(context.new_page(), app_url(app_server, model="test/tiny", endpoint=hub.url, **REPLY))
    yield app
    context.close()


@pytest.fixture
def tiny_page(booted_tiny):
    """The shared page, as each test found it: no conversation, the cache manager closed; checked
    for errors and stray requests."""
    booted_tiny.errors.clear()
    yield booted_tiny
    assert booted_tiny.errors == [] and booted_tiny.foreign_requests() == []
    booted_tiny.page.locator("#cache-manager").evaluate("details => { details.open = false; }")
    booted_tiny.page.get_by_role("button", name="New chat").click()
    assert booted_tiny.replies().count() == 0


def test_on_a_phone_a_loaded_model_leaves_the_conversation_and_the_composer_in_view(tiny_page):
    """Once a model is loaded the model panel folds to one line: on a 375 x 667 phone the
    conversation and the composer (message box and Send) are on screen without scrolling, and
    Change model brings the form back."""
    page = tiny_page.page
    page.set_viewport_size({"width": 375, "height": 667})
    tiny_page.wait_status("Ready")
    page.evaluate("window.scrollTo(0, 0)")
    assert page.get_by_role("button", name="Change model").is_visible()
    assert page.text_content("#model-line").startswith("test/tiny · ")
    assert not page.get_by_role("textbox", name="Model", exact=True).is_visible()
    boxes = page.evaluate("""() => Object.fromEntries(['log', 'message', 'send'].map(id => {
        const box = document.getElementById(id).getBoundingClientRect();
        return [id, {top: box.top, bottom: box.bottom}];
    }))""")
    assert boxes["log"]["top"] < 667 - 100 and boxes["message"]["bottom"] <= 667 and boxes["send"]["bottom"] <= 667, boxes
    page.get_by_role("button", name="Change model").click()
    assert page.get_by_role("textbox", name="Model", exact=True).is_visible()
    assert page.get_by_role("button", name="Change model").is_hidden()
    page.set_viewport_size({"width": 1280, "height": 900})


@pytest.mark.parametrize("scheme", ["light", "dark"])
@pytest.mark.parametrize("size", list(SIZES))
def test_axe_layout_colours_and_screenshots(tiny_page, axe_js, size, scheme):
    width, height = SIZES[size]
    app = tiny_page
    page = app.page
    page.set_viewport_size({"width": width, "height": height})
    page.emulate_media(color_scheme=scheme)
    app.wait_status("Ready")
    assert app.replies().count() == 0
    app.send("The old lighthouse keeper")
    app.wait_reply_done()
    page.click("#cache-manager summary")
    page.locator("#cached-models li").first.wait_for()

    assert run_axe(page, axe_js) == []
    assert page.evaluate("document.documentElement.scrollWidth") <= width  # no sideways scrolling
    assert page.evaluate(f"""() => [...document.querySelectorAll("{CONTROLS}")]
        .filter(e => e.getClientRects().length && e.getBoundingClientRect().right > {width} + 0.5)
        .map(e => e.id || e.outerHTML.slice(0, 80))""") == []  # every control on screen

    seen = colours(page)
    assert page.evaluate("matchMedia('(prefers-color-scheme: dark)').matches") == (scheme == "dark")
    assert (sum(rgb(seen["bg"])) < 3 * 128) == (scheme == "dark")
    assert contrast(seen["fg"], seen["bg"]) >= 7 and contrast(seen["fg"], seen["panel"]) >= 7
    assert contrast(seen["muted"], seen["bg"]) >= 4.5

    path = ROOT / "test-results" / f"{size}-{scheme}.png"
    path.parent.mkdir(exist_ok=True)
    png = page.screenshot(path=str(path), full_page=True)
    assert path.stat().st_size > 20_000 and distinct_colours(page, png) > 50


def test_light_and_dark_themes_differ_and_the_offline_notice_reads_well(open_app, axe_js):
    app = open_app()
    app.wait_status("Runtime ready")
    app.page.context.set_offline(True)
    app.page.locator("#offline").wait_for()
    seen = {}
    for scheme in ("light", "dark"):
        app.page.emulate_media(color_scheme=scheme)
        seen[scheme] = colours(app.page)
        assert run_axe(app.page, axe_js) == []
    assert all(seen["light"][key] != seen["dark"][key] for key in seen["light"])
    app.page.context.set_offline(False)


def test_every_control_has_a_name(tiny_page):
    app = tiny_page
    app.wait_status("Ready")
    unnamed = app.page.evaluate("""() => [...document.querySelectorAll('input, textarea, select, button')]
        .filter(e => !(e.labels?.length || e.getAttribute('aria-label') || e.getAttribute('aria-labelledby')
                       || (e.tagName === 'BUTTON' && e.textContent.trim())))
        .map(e => e.id || e.outerHTML.slice(0, 80))""")
    assert unnamed == []


def focused(page) -> dict:
    return page.evaluate("""() => {
        const e = document.activeElement, style = getComputedStyle(e);
        return {id: e.id, tag: e.tagName.toLowerCase(), name: e.getAttribute('aria-label') || e.labels?.[0]?.textContent
                    || e.textContent.trim().slice(0, 40),
                outline: style.outlineStyle !== 'none' && parseFloat(style.outlineWidth) > 0 || style.boxShadow !== 'none'};
    }""")


def test_keyboard_alone_loads_writes_sends_and_stops(open_app, hub):
    app = open_app(endpoint=hub.url, temperature=0, max_new_tokens=400)
    page = app.page
    app.wait_status("Runtime ready")
    page.click("h1")  # the start of the page: Tab goes on from here
    path = []
    while not path or path[-1]["id"] != "model":  # first stop in the model panel: its name
        page.keyboard.press("Tab")
        path.append(focused(page))
        assert len(path) < 30, path
    page.keyboard.press("Control+A")
    page.keyboard.type("test/tiny")
    page.keyboard.press("Enter")  # submits the model form
    app.wait_status("Ready")
    assert focused(page)["id"] == "message"  # ready to write

    page.click("h1")
    path = []
    while not path or path[-1]["id"] != "message":
        page.keyboard.press("Tab")
        path.append(focused(page))
        assert len(path) < 40, path
    assert [step for step in path if not step["outline"]] == []  # the focus is always visible
    stops = {step["id"] for step in path}
    assert {"change-model", "message"} <= stops and "model" not in stops  # the loaded model's panel is folded

    page.keyboard.type("Once upon a time there was")
    page.keyboard.press("Enter")
    page.wait_for_function("() => document.querySelector('#log article.assistant .token') !== null")
    page.keyboard.press("Tab")  # Send is disabled while it writes: the next stop is Stop
    assert focused(page)["id"] == "stop"
    page.keyboard.press("Enter")
    reply = app.wait_reply_done()
    assert 0 < len(app.replies().last.locator(".token").all()) < 400
    assert reply
    assert page.get_by_role("button", name="Send").is_enabled()
    assert focused(page)["id"] == "message"  # back in the message box for the next one
