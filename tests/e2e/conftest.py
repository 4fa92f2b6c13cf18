"""Browser tests: the real index.html in Debian's Chromium, served from 127.0.0.1, with fixture
checkpoints behind a local server that speaks the Hub's URL layout. Chromium cannot resolve
any other host, and every test fails on a console error or a request to another host."""
from __future__ import annotations

import time
from collections.abc import Iterator
from urllib.parse import urlencode, urlsplit

import pytest

from support import MODEL_NAMES, MODELS, ROOT
from tools.browser import CHROMIUM, CHROMIUM_ARGS, REPLY_DONE
from tools.hub_server import HubServer
from tools.serve import AppServer

ALLOWED_WARNINGS = ("Unable to use `window` or `document`",  # PyScript, in a worker without SharedArrayBuffer
                    "Service Worker registration blocked by Playwright")  # open_plain's contexts
LONG_TASKS = """
window.__longTasks = [];
new PerformanceObserver(list => window.__longTasks.push(...list.getEntries().map(e => ({start: e.startTime, duration: e.duration}))))
  .observe({type: "longtask", buffered: true});
"""

FINAL_STATUS = """() => {
    window.__final = null;
    const status = document.getElementById('status');
    new MutationObserver((_, observer) => {
        if (/^(Ready|Could not)/.test(status.textContent)) { observer.disconnect(); window.__final = status.textContent; }
    }).observe(status, {childList: true, subtree: true, characterData: true});
}"""


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    return {**browser_type_launch_args, "executable_path": CHROMIUM, "args": CHROMIUM_ARGS}


@pytest.fixture(scope="session")
def app_server():
    with AppServer(ROOT) as server:
        yield server


@pytest.fixture(scope="session")
def hub():
    with HubServer({f"test/{name}": {"main": MODELS / name} for name in MODEL_NAMES}) as server:
        yield server


class AppPage:
    """One browser tab on the app, with what it logged and every URL it requested."""

    def __init__(self, page, url: str, allowed_hosts: tuple[str, ...] = ("127.0.0.1",)):
        self.page, self.errors, self.requests, self.allowed_hosts = page, [], [], allowed_hosts
        page.on("console", self.on_console)
        page.on("pageerror", lambda error: self.errors.append(f"page error: {error}"))
        page.on("request", lambda request: self.requests.append(request.url))
        page.add_init_script(LONG_TASKS)
        page.goto(url)

    def on_console(self, message) -> None:
        if message.type == "error" or (message.type == "warning" and not message.text.startswith(ALLOWED_WARNINGS)):
            self.errors.append(f"console {message.type}: {message.text}")

    def status(self) -> str:
        return self.page.text_content("#status")

    def wait_status(self, prefix: str, timeout: float = 90) -> str:
        deadline = time.monotonic() + timeout
        while not (text := self.status()).startswith(prefix):
            assert time.monotonic() < deadline, f"status is still {text!r}"
            assert not text.startswith("Could not"), text
            self.page.wait_for_timeout(100)
        return text

    def load_outcome(self, start, timeout: float = 60) -> str:
        """Run start() (which begins a load) and return the status line the load ends with."""
        self.page.evaluate(FINAL_STATUS)
        start()
        return self.page.wait_for_function("() => window.__final", timeout=timeout * 1000).json_value()

    def show_model_form(self, advanced: bool = False) -> None:
        """Unfold the model panel (Change model) if a load folded it; with advanced, open its
        Advanced fields (revision, endpoint, workers, weights)."""
        if self.page.is_visible("#change-model"):
            self.page.click("#change-model")
        if advanced:
            self.page.evaluate("() => { document.getElementById('advanced').open = true; }")

    def send(self, text: str) -> None:
        """Type and send a message; return once its reply element exists."""
        before = self.replies().count()
        self.page.get_by_role("textbox", name="Message").fill(text)
        self.page.get_by_role("button", name="Send").click()
        self.page.wait_for_function(f"() => document.querySelectorAll('#log article.assistant').length > {before}")

    def replies(self):
        return self.page.locator("#log article.assistant")

    def wait_reply_done(self, timeout: float = 60) -> str:
        last = self.replies().last
        self.page.wait_for_function(REPLY_DONE, timeout=timeout * 1000)
        return last.locator(".text").text_content()

    def worker(self, function: str, *args):
        """Call one of the worker's exported functions, as the main thread does."""
        return self.page.evaluate(f"async args => await window.modelWorker.{function}(...args)", list(args))

    def foreign_requests(self) -> list[str]:
        return [url for url in self.requests
                if urlsplit(url).scheme not in ("data", "blob") and urlsplit(url).hostname not in self.allowed_hosts]


def app_url(app_server, path: str = "", **params) -> str:
    return f"{app_server.url}/{path}?{urlencode(params)}"


def page_opener(browser, server, service_workers: str = "allow"):
    """A function that opens pages of `server` in fresh browser contexts; checked for errors and
    stray requests when the test ends. service_workers="block" keeps the app's service worker
    out, and with it the cross-origin isolation it gives (sw.js)."""
    pages: list[AppPage] = []

    def open_page(path: str, setup=None, allowed_hosts=("127.0.0.1",), **params) -> AppPage:
        """setup(context) runs before the page opens (e.g. to add routes). The chat page starts
        one model worker unless `workers` is given (None: as many as the page chooses): on 2 cores, booting a second Pyodide doubles
        a boot's cost, and the tests of the split (test_parallel_page.py, the shared chat page)
        ask for their workers."""
        if path == "":
            params.setdefault("workers", 1)
        params = {name: value for name, value in params.items() if value is not None}  # workers=None: the page's own count
        context = browser.new_context(service_workers=service_workers)
        if setup:
            setup(context)
        pages.append(AppPage(context.new_page(), app_url(server, path, **params), allowed_hosts))
        return pages[-1]

    yield open_page
    for app in pages:
        assert app.errors == [] and app.foreign_requests() == []
        app.page.context.close()


@pytest.fixture
def open_path(browser, app_server):
    """Open any page of the repository (e.g. open_path("examples/js/", model=…)) in a fresh
    browser context; checked for errors and stray requests."""
    yield from page_opener(browser, app_server)


@pytest.fixture(scope="session")
def isolated_server():
    """The app served cross-origin isolated (COOP/COEP), so pages get SharedArrayBuffer."""
    with AppServer(ROOT, isolated=True) as server:
        yield server


@pytest.fixture
def open_isolated(browser, isolated_server):
    """open_path's pages, from the cross-origin-isolated server."""
    yield from page_opener(browser, isolated_server)


@pytest.fixture
def open_plain(browser, app_server):
    """open_path's pages without the service worker: not cross-origin isolated, as on a host
    without COOP/COEP headers in a browser that refuses service workers."""
    yield from page_opener(browser, app_server, service_workers="block")


@pytest.fixture
def open_app(open_path):
    """Open the app in a fresh browser context; checked for errors and stray requests."""
    return lambda setup=None, allowed_hosts=("127.0.0.1",), **params: open_path("", setup, allowed_hosts, **params)


def shared_page(browser, url: str, ready: str) -> Iterator[AppPage]:
    """A page in a browser context of its own for a fixture shared by several tests: yielded once
    its status starts with `ready`, closed after them."""
    context = browser.new_context()
    app = AppPage(context.new_page(), url)
    app.wait_status(ready)
    yield app
    context.close()


def checked(app: AppPage) -> Iterator[AppPage]:
    """A shared page lent to one test, which must leave it without console errors or stray requests."""
    app.errors.clear()
    yield app
    assert app.errors == [] and app.foreign_requests() == []


@pytest.fixture(scope="session")
def shared_chat(browser, app_server, hub):
    """One booted page with the tiny model, greedy, shared by the tests that do not disturb it."""
    yield from shared_page(browser, app_url(app_server, model="test/tiny", endpoint=hub.url, temperature=0,
                                            max_new_tokens=40), "Ready")


@pytest.fixture
def chat(shared_chat):
    yield from checked(shared_chat)


@pytest.fixture(scope="session")
def shared_runtime_page(browser, app_server, hub):
    """One booted page with no model (``Runtime ready``), shared by tests that only load models of
    their own into it through the model form."""
    yield from shared_page(browser, app_url(app_server, endpoint=hub.url), "Runtime ready")


@pytest.fixture
def runtime_page(shared_runtime_page):
    """The shared page with no model at first, its model form shown."""
    shared_runtime_page.show_model_form()
    yield from checked(shared_runtime_page)


def load_model(app: AppPage, repo: str, timeout: float = 60) -> str:
    """Load repo through the model form; return the status line the load ends with."""
    app.show_model_form()
    app.page.get_by_role("textbox", name="Model", exact=True).fill(repo)
    return app.load_outcome(lambda: app.page.click("#load"), timeout)
