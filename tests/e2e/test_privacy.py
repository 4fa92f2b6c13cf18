"""Privacy, proven: in a whole session (boot, download, chat, the cache manager) the page, its
model worker and its service worker contact only the model endpoint and, in the CDN build, the
pinned runtime CDN (and the app's own origin); what is typed is never in any request."""
from __future__ import annotations

from urllib.parse import unquote, urlsplit

import pytest

from test_runtime import serve_cdn_from_vendor

SECRET = "my bank password is hunter2"


@pytest.mark.parametrize("build", ["vendor", "cdn"])
def test_a_whole_session_contacts_only_the_model_endpoint_and_the_runtime_cdn(open_app, app_server, hub, build):
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

    app_origin, endpoint = urlsplit(app_server.url).netloc, urlsplit(hub.url).netloc
    allowed = {app_origin, endpoint} | ({"cdn.jsdelivr.net"} if cdn else set())
    contacted = {urlsplit(r.url).netloc for r in requests if urlsplit(r.url).scheme not in ("data", "blob")}
    assert contacted <= allowed, contacted - allowed
    assert endpoint in contacted and ("cdn.jsdelivr.net" in contacted) == cdn
    assert any(r.service_worker for r in requests)  # the service worker's own fetches are in the list too
    if cdn:
        assert not any("/vendor/" in r.url for r in requests)
    # The endpoint is only asked for the model's files; nothing is ever sent, only fetched.
    assert {urlsplit(r.url).path.split("/resolve/")[0] for r in requests if urlsplit(r.url).netloc == endpoint} \
        == {"/test/tiny"}
    assert {r.method for r in requests} <= {"GET", "HEAD"}
    assert not any(r.post_data_buffer for r in requests)
    for word in ("hunter2", "password"):
        assert not any(word in unquote(r.url) or any(word in v for v in r.headers.values()) for r in requests)
    assert sockets == []
