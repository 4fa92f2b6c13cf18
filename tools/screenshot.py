"""The README's pictures: the chat page with a reply, at desktop and phone sizes, written to
docs/screenshot.png and docs/screenshot-phone.png. The page runs the tiny random test model
(hence the gibberish) from a local hub, in Debian's Chromium:

    .venv/bin/python tools/screenshot.py
"""
from __future__ import annotations

import sys
from pathlib import Path
from urllib.parse import urlencode

from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tools.browser import REPLY_DONE, launch  # noqa: E402
from tools.hub_server import HubServer  # noqa: E402
from tools.serve import AppServer  # noqa: E402

SIZES = {"screenshot.png": {"width": 1280, "height": 900}, "screenshot-phone.png": {"width": 375, "height": 812}}
PROMPT = "The old lighthouse keeper"


def take(browser, url: str, path: Path, viewport: dict) -> None:
    """Open the app, load the model, send the prompt, wait for the reply, take the picture."""
    page = browser.new_context(viewport=viewport).new_page()
    page.goto(url)
    page.wait_for_function("() => document.getElementById('status').textContent.startsWith('Ready')",
                           timeout=120_000)
    page.get_by_role("textbox", name="Message").fill(PROMPT)
    page.get_by_role("button", name="Send").click()
    page.wait_for_function(REPLY_DONE, timeout=120_000)
    page.screenshot(path=str(path))
    page.context.close()


def main() -> None:
    with AppServer(ROOT) as app, HubServer({"test/tiny": {"main": ROOT / "tests/fixtures/models/tiny"}}) as hub, \
            sync_playwright() as playwright:
        browser = launch(playwright)
        query = urlencode({"model": "test/tiny", "endpoint": hub.url, "temperature": 0, "max_new_tokens": 40})
        for name, viewport in SIZES.items():
            take(browser, f"{app.url}/?{query}", ROOT / "docs" / name, viewport)
            print("wrote", ROOT / "docs" / name)
        browser.close()


if __name__ == "__main__":
    main()
