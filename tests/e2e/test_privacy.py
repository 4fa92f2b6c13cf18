"""Privacy, proven: in a whole session (boot, download, chat, the cache manager) the page, its
model worker and its service worker contact only the model endpoint, the CDN it redirects the
weights to (a hub that answers as huggingface.co does) and, in the CDN build, the pinned runtime
CDN (and the app's own origin); what is typed is never in any request."""
from __future__ import annotations

import re
from urllib.parse import unquote, urlsplit

import pytest

from model_loader.hub import CDN_HOSTS
from support import MODELS, ROOT
from test_runtime import serve_cdn_from_vendor
from tools.hub_server import HubServer

SECRET = "my bank password is hunter2"


@pytest.fixture(scope="module")
def real_hub():
    """A hub that sends the weights from a CDN on another origin, as huggingface.co does."""
    with HubServer({"test/tiny": {"main": MODELS / "tiny"}}, real=True) as server:
        yield server


@pytest.mark.parametrize("build", ["vendor", "cdn"])
def test_a_whole_session_contacts_only_the_model_endpoint_its_cdn_and_the_runtime_cdn(open_app, app_server,
                                                                                       real_hub, build):
    hub = real_hub
    cdn = build == "cdn"
    requests, sockets = [], []

    def watch(context) -> None:
        if cdn:
            serve_cdn_from_vendor(context)
        # Every request of the context: the page's, the model worker's and the service worker's.
        context.on("request", lambda request: requests.append(request))
        context.on("page", lambda page: page.on("websocket", lambda socket: sockets.append(socket)))

    app = open_app(setup=watch, allowed_hosts=("127.0.0.1", "cdn.jsdelivr.net") if cdn else ("127.0.0.1",),
                   model="test/tiny", endpoint=hub.url, temperature=0, max_new_tokens=16,
                   **({"runtime": "cdn"} if cdn else {}))
    app.wait_status("Ready")
    app.send(SECRET)
    app.wait_reply_done()
    app.page.get_by_label("Mode", exact=True).select_option("chat")
    app.send(SECRET + " again")
    app.wait_reply_done()
    app.page.click("#cache-manager summary")
    app.page.locator("#cached-models li").first.wait_for()

    app_origin, endpoint, weights_cdn = (urlsplit(url).netloc for url in (app_server.url, hub.url, hub.cdn.url))
    allowed = {app_origin, endpoint, weights_cdn} | ({"cdn.jsdelivr.net"} if cdn else set())
    contacted = {urlsplit(r.url).netloc for r in requests if urlsplit(r.url).scheme not in ("data", "blob")}
    assert contacted <= allowed, contacted - allowed
    assert {endpoint, weights_cdn} <= contacted and ("cdn.jsdelivr.net" in contacted) == cdn
    # The weights' CDN is only reached by following the endpoint's redirect of a weight file.
    assert all(r.redirected_from and r.redirected_from.url.endswith("/model.safetensors")
               for r in requests if urlsplit(r.url).netloc == weights_cdn)
    assert any(r.service_worker for r in requests)  # the service worker's own fetches are in the list too
    if cdn:
        assert not any("/vendor/" in r.url for r in requests)
    # The endpoint is only asked about the model and for its files; nothing is ever sent, only fetched.
    asked = {re.sub(r"^/api/models(/.+)/(revision|tree)/[^/]+$", r"\1", urlsplit(r.url).path).split("/resolve/")[0]
             for r in requests if urlsplit(r.url).netloc == endpoint}
    assert asked == {"/test/tiny"}
    assert {r.method for r in requests} <= {"GET", "HEAD"}
    assert not any(r.post_data_buffer for r in requests)
    for word in ("hunter2", "password"):
        assert not any(word in unquote(r.url) or any(word in v for v in r.headers.values()) for r in requests)
    assert sockets == []


def test_the_readme_names_the_hubs_cdn_hosts_as_the_only_other_hosts_of_weights():
    privacy = (ROOT / "README.md").read_text().split("## Privacy")[1].split("\n## ")[0]
    assert all(host in privacy for host in CDN_HOSTS)
