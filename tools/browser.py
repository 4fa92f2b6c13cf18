"""Debian's Chromium as the tests, the benchmarks and tools/screenshot.py launch it: headless,
no sandbox (CI runs as root), and no host but 127.0.0.1 reachable, so nothing leaves the machine."""
from __future__ import annotations

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1"]
# True once the page's last reply is written (its article no longer busy).
REPLY_DONE = """() => { const r = [...document.querySelectorAll('#log article.assistant')].pop();
                        return r && r.getAttribute('aria-busy') === 'false'; }"""


def launch(playwright):
    """The browser, through Playwright (never `playwright install`: Debian's build is used)."""
    return playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)


def launch_profile(playwright, folder):
    """A browser context on a profile kept in `folder`, as a visitor's browser has one: its
    storage quota is a share of the disk (a new_context() is off the record, its quota small)."""
    return playwright.chromium.launch_persistent_context(folder, executable_path=CHROMIUM, args=CHROMIUM_ARGS)
