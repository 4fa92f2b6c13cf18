"""Hostile and broken inputs in the page: every one ends in a clear message and a usable page
(a seed the engine cannot use, a stored conversation that does not parse, an HTML page served
as a checkpoint's index)."""
from __future__ import annotations

import shutil

from support import MODELS

BROKEN_CONVERSATION = '{"mode": "chat", "messages": 5}'


def test_a_seed_of_minus_one_is_refused_and_the_next_reply_works(chat):
    seed = chat.page.get_by_label("Seed")
    chat.page.evaluate("() => { document.getElementById('settings').open = true; }")
    seed.fill("-1")
    chat.page.get_by_role("textbox", name="Message").fill("Once upon a time")
    chat.page.get_by_role("button", name="Send").click()
    refused = "Could not write a reply: seed must be a whole number >= 0"  # not an earlier test's refusal
    chat.page.wait_for_function("text => document.getElementById('status').textContent.startsWith(text)", arg=refused)
    seed.fill("")
    chat.page.evaluate("() => { document.getElementById('settings').open = false; }")
    assert chat.page.get_by_role("button", name="Send").is_enabled()
    chat.send("Once upon a time")
    assert chat.wait_reply_done()


def test_a_stored_conversation_that_does_not_parse_is_set_aside_not_fatal(open_app, hub):
    def keep_broken_conversation(context) -> None:
        context.add_init_script(f"""if (!sessionStorage.getItem('seeded')) {{
            localStorage.setItem('browser-llm:conversation', '{BROKEN_CONVERSATION}');
            sessionStorage.setItem('seeded', '1'); }}""")

    app = open_app(setup=keep_broken_conversation, model="test/tiny", endpoint=hub.url, temperature=0)
    app.wait_status("Ready")
    assert "could not be read in full" in app.page.text_content("#log .notice")
    assert app.page.evaluate("localStorage.getItem('browser-llm:conversation:set-aside')") == BROKEN_CONVERSATION
    app.send("Once upon a time")
    assert app.wait_reply_done()


def test_an_html_page_as_the_index_of_a_sharded_checkpoint_is_refused(runtime_page, hub, tmp_path):
    folder = shutil.copytree(MODELS / "sharded", tmp_path / "html-index")
    (folder / "model.safetensors.index.json").write_text("<!doctype html><html><body>Not found</body></html>")
    hub.add_repo("test/html-index", folder)
    app = runtime_page
    app.page.get_by_role("textbox", name="Model", exact=True).fill("test/html-index")
    app.page.wait_for_function("() => document.getElementById('model-size').textContent.startsWith('test/html-index: ≈')")
    status = app.load_outcome(lambda: app.page.click("#load"))
    assert status.startswith("Could not load test/html-index") and "has no valid weight_map" in status, status
    app.page.get_by_role("textbox", name="Model", exact=True).fill("test/tiny")
    assert app.load_outcome(lambda: app.page.click("#load")).startswith("Ready")


def test_the_page_refuses_inline_scripts(chat):
    """The Content-Security-Policy in index.html: a <script> that found its way into the page
    does not run (the page renders text as text, so this is the defence behind that one)."""
    directive = chat.page.evaluate("""() => new Promise(resolve => {
        document.addEventListener('securitypolicyviolation', e => resolve(e.effectiveDirective), {once: true});
        const script = document.createElement('script');
        script.textContent = 'window.__ran = true';
        document.body.append(script);
    })""")
    assert directive.startswith("script-src") and chat.page.evaluate("window.__ran") is None
    chat.page.wait_for_timeout(200)  # the refusal is also logged on the console, as it should be
    chat.errors[:] = [e for e in chat.errors if "Content Security Policy" not in e]
