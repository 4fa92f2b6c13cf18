"""The chat experience in a real browser: the model picker and download sizes, modes per
model, the settings panel, the stats line and conversations (new, regenerate, edit, copy,
export, kept across reloads, deleted)."""
from __future__ import annotations

import json
import re
from dataclasses import asdict, fields
from urllib.parse import urlsplit

import pytest

from engine import GenerationSettings
from engine.chat import chat_prompt
from support import MODELS, fixture_model

GREEDY = dict(temperature=0, max_new_tokens=20)
SUGGESTED = ["openai-community/gpt2", "distilbert/distilgpt2", "openai-community/gpt2-medium",
             "openai-community/gpt2-large", "openai-community/gpt2-xl",
             "microsoft/DialoGPT-small", "microsoft/DialoGPT-medium"]


def completion(prompt: str, **settings) -> str:
    return "".join(s.text for s in fixture_model("tiny").generate(prompt, **{**GREEDY, **settings}))


def chat_reply(turns: list[tuple[str, str]], style: str, session=None) -> str:
    """The tiny model's greedy reply; with a session, reusing what it holds as the page's worker does."""
    model = fixture_model("tiny")
    ids, stops = chat_prompt(turns, model.tokenizer, style, session.cached if session else ())
    return "".join(s.text for s in model.generate(ids, session=session, stop=stops, **GREEDY))


def messages(app) -> list[tuple[str, str]]:
    """The conversation on the page as (role, text)."""
    return app.page.evaluate("""() => [...document.querySelectorAll('#log article')].map(
        a => [a.classList.contains('user') ? 'user' : 'assistant', a.querySelector('.text').textContent])""")


def open_settings(app) -> None:
    app.page.locator("#settings").evaluate("details => { details.open = true; }")


def regenerated(app, press) -> str:
    """press() asks for the last reply again; the new reply's text once written."""
    app.page.evaluate("() => document.querySelectorAll('#log article.assistant').forEach(a => { a.dataset.old = '1'; })")
    press()
    new = "document.querySelector('#log article.assistant:not([data-old])')"
    app.page.wait_for_function(f"() => {new} && {new}.getAttribute('aria-busy') === 'false'")
    return app.page.evaluate(f"() => {new}.querySelector('.text').textContent")


@pytest.fixture(scope="module")
def shared_tiny(browser, app_server, hub):
    """One page of this module's own with the tiny model loaded, greedy, 20 tokens."""
    from conftest import app_url, shared_page
    yield from shared_page(browser, app_url(app_server, model="test/tiny", endpoint=hub.url, workers=1, **GREEDY),
                           "Ready")


@pytest.fixture
def tiny_app(shared_tiny):
    """The shared page on a new chat in completion mode."""
    from conftest import checked
    shared_tiny.page.get_by_role("button", name="New chat").click()
    shared_tiny.page.get_by_label("Mode", exact=True).select_option("completion")
    yield from checked(shared_tiny)


# -- models

def test_picker_suggests_models_fills_the_model_field_and_says_why_a_size_is_unknown(open_app, hub):
    app = open_app(endpoint=hub.url)
    app.wait_status("Runtime ready")
    picker = app.page.get_by_label("Choose a model")
    field = app.page.get_by_role("textbox", name="Model", exact=True)
    values = picker.locator("option").evaluate_all("options => options.map(o => o.value)")
    assert values == SUGGESTED + [""]
    assert picker.input_value() == "openai-community/gpt2"  # in step with the Model field
    picker.select_option("microsoft/DialoGPT-small")  # not on the test hub
    assert field.input_value() == "microsoft/DialoGPT-small"
    wait_size(app, "microsoft/DialoGPT-small")
    assert "size unknown" in app.page.text_content("#model-size") and "repository not found" in app.page.text_content("#model-size")
    field.fill("someone/custom-gpt2")
    assert picker.input_value() == ""  # "Other: type a repository id"


def wait_size(app, repo: str) -> None:
    """Wait for the size line to answer about repo."""
    app.page.wait_for_function("repo => document.getElementById('model-size').textContent.startsWith(repo + ': ')", arg=repo)


def test_download_size_is_shown_before_loading_then_cached(open_app, hub):
    app = open_app(endpoint=hub.url)
    app.wait_status("Runtime ready")
    shown = app.page.locator("#model-size")
    field = app.page.get_by_role("textbox", name="Model", exact=True)
    for repo, size in (("test/tiny", "0.7 MB"), ("test/sharded", "1.1 MB"), ("test/bin", "0.3 MB")):
        hub.clear_requests()
        field.fill(repo)
        wait_size(app, repo)
        assert shown.text_content() == f"{repo}: ≈ {size} to download from {urlsplit(hub.url).netloc}"  # not the default Hub
        assert not [r for r in hub.requests if r.method == "GET" and r.file.endswith((".safetensors", ".bin"))]
        app.page.get_by_role("button", name="Load model").click()
        app.wait_status(f"Ready: {repo} ")
        app.show_model_form()
        field.fill(repo)  # asked again: now in the cache
        wait_size(app, repo)
        assert shown.text_content().startswith(f"{repo}: cached (")


def test_dialogpt_opens_in_chat_mode_with_eot_turns_and_gpt2_in_completion(open_app, hub):
    hub.add_repo("test/DialoGPT-tiny", MODELS / "tiny")
    app = open_app(model="test/DialoGPT-tiny", endpoint=hub.url, **GREEDY)
    app.wait_status("Ready")
    mode = app.page.get_by_label("Mode", exact=True)
    assert mode.input_value() == "chat"
    turns, session = [], fixture_model("tiny").session()  # a new page's worker: nothing cached yet
    for text in ("Hello there", "Tell me more"):
        turns.append(("user", text))
        app.send(text)
        turns.append(("assistant", app.wait_reply_done()))
        assert turns[-1][1] == chat_reply(turns[:-1], "eot", session)
    app.show_model_form()
    app.page.get_by_role("textbox", name="Model", exact=True).fill("test/tiny")
    app.page.get_by_role("button", name="Load model").click()
    app.wait_status("Ready: test/tiny ")
    assert mode.input_value() == "completion"  # another model picks its own mode
    app.send("The old lighthouse keeper")
    assert app.wait_reply_done() == completion("The old lighthouse keeper")


# -- settings

def settings_values(app) -> dict:
    return app.page.evaluate("""() => Object.fromEntries([...document.querySelectorAll('#settings-form [name]')]
        .map(f => [f.name, f.value]))""")


def test_the_settings_form_is_made_from_generation_settings_before_the_model_worker_boots(open_app):
    def hold_the_workers_runtime(context) -> None:  # Pyodide never arrives: the worker never boots
        context.route("**/pyodide/**", lambda route: None)

    app = open_app(setup=hold_the_workers_runtime)
    page = app.page
    page.get_by_label("Stop strings, one per line").wait_for(state="attached")
    assert app.status() == "Starting the model workers…"
    page.get_by_text("Generation settings").click()
    for setting in fields(GenerationSettings):
        control = page.get_by_label(setting.metadata["label"])
        assert control.get_attribute("name") == setting.name
        for attribute, value in setting.metadata["form"].items():
            assert control.get_attribute(attribute) == str(value), (setting.name, attribute)
    assert list(settings_values(app)) == [setting.name for setting in fields(GenerationSettings)]


def test_settings_default_to_the_engine_kept_reset_and_overridden_by_the_url(open_app, hub):
    defaults = {k: "" if v is None else "\n".join(v) if isinstance(v, tuple) else str(v)
                for k, v in asdict(GenerationSettings()).items()}
    app = open_app(endpoint=hub.url)
    app.wait_status("Runtime ready")
    page = app.page
    page.get_by_text("Generation settings").click()
    assert settings_values(app) == defaults
    page.get_by_label("Temperature").fill("0.5")
    page.get_by_label("Stop strings").fill("The end\nTHE END")
    page.reload()
    app.wait_status("Runtime ready")
    assert settings_values(app) == {**defaults, "temperature": "0.5", "stop": "The end\nTHE END"}
    page.goto(page.url + "&top_k=7&seed=3")  # for this visit only
    app.wait_status("Runtime ready")
    assert settings_values(app) == {**defaults, "temperature": "0.5", "stop": "The end\nTHE END", "top_k": "7", "seed": "3"}
    open_settings(app)
    page.get_by_role("button", name="Reset to defaults").click()
    assert settings_values(app) == defaults
    page.goto(page.url.split("&top_k")[0])
    app.wait_status("Runtime ready")
    assert settings_values(app) == defaults


def test_settings_from_the_panel_shape_the_reply(chat):
    page = chat.page
    prompt = "The old lighthouse keeper"
    full = completion(prompt, max_new_tokens=40)
    stop = full[len(full) // 2:][:6]
    assert stop.strip()
    open_settings(chat)
    try:
        page.get_by_label("Stop strings").fill(stop)
        chat.send(prompt)
        assert chat.wait_reply_done() == completion(prompt, max_new_tokens=40, stop=(stop,))
        page.get_by_label("Stop strings").fill("")
        page.get_by_label("Max new tokens").fill("3")
        chat.send(prompt)
        chat.wait_reply_done()
        assert chat.replies().last.locator(".token").count() <= 3
        assert page.text_content("#stats").startswith(f"{len(fixture_model('tiny').tokenizer.encode(prompt))} prompt tokens · 3 new")
        page.get_by_label("Top-p").fill("0")
        before = chat.replies().count()
        page.get_by_role("textbox", name="Message").fill(prompt)
        page.get_by_role("button", name="Send").click()
        refused = "Could not write a reply: top_p must be in (0, 1]"  # not an earlier test's refusal
        page.wait_for_function("text => document.getElementById('status').textContent.startsWith(text)", arg=refused)
        assert chat.replies().count() == before
    finally:
        page.get_by_label("Top-p").fill("0.95")
        page.get_by_label("Max new tokens").fill("40")
        page.get_by_label("Stop strings").fill("")
    regenerated(chat, page.get_by_role("button", name="Regenerate").click)  # the prompt left without a reply
    assert chat.wait_reply_done() == completion(prompt, max_new_tokens=40)


# -- stats

def test_stats_show_speed_context_and_memory(open_app, hub):
    tiny_app = open_app(model="test/tiny", endpoint=hub.url, **GREEDY)  # a page of its own: its first stats
    tiny_app.wait_status("Ready")
    page = tiny_app.page
    heap = tiny_app.worker("heap_bytes")
    workers = page.evaluate("window.modelWorker.info.workers")
    each = f" in each of {workers} workers" if workers > 1 else ""
    assert page.text_content("#stats") == f"Memory in use: {round(heap / 1e6, 1)} MB{each}"
    tiny_app.send("The old lighthouse keeper")
    tiny_app.wait_reply_done()
    stats = page.text_content("#stats")
    prompt_tokens = len(fixture_model("tiny").tokenizer.encode("The old lighthouse keeper"))
    n_ctx = fixture_model("tiny").config.n_ctx
    assert stats.startswith(f"{prompt_tokens} prompt tokens · 20 new · ")
    assert "tokens/s" in stats and f"context {prompt_tokens + 20} of {n_ctx}" in stats
    rate, wait = re.search(r"· ([\d.]+) tokens/s · first token in (\d+) ms ·", stats).groups()
    assert float(rate) > 0 and int(wait) > 0
    assert stats.endswith(f"memory in use {round(tiny_app.worker('heap_bytes') / 1e6, 1)} MB{each}")


# -- conversations

def test_regenerate_edit_and_new_chat(tiny_app):
    page = tiny_app.page
    tiny_app.send("The old lighthouse keeper")
    first = tiny_app.wait_reply_done()
    assert regenerated(tiny_app, page.get_by_role("button", name="Regenerate").click) == first
    assert messages(tiny_app) == [["user", "The old lighthouse keeper"], ["assistant", first]]
    page.get_by_role("button", name="Edit last message").click()
    box = page.get_by_role("textbox", name="Message")
    assert box.input_value() == "The old lighthouse keeper"
    assert page.evaluate("document.activeElement.id") == "message"
    box.fill("Once upon a time")
    box.press("Enter")
    page.wait_for_function("() => document.querySelector('#log article.user .text').textContent === 'Once upon a time'")
    assert tiny_app.wait_reply_done() == completion("Once upon a time")
    assert messages(tiny_app) == [["user", "Once upon a time"], ["assistant", completion("Once upon a time")]]
    page.get_by_role("button", name="New chat").click()
    assert messages(tiny_app) == []
    page.get_by_label("Mode", exact=True).select_option("chat")
    for _ in range(2):  # the same first turn twice: the new chat forgot the earlier turns
        tiny_app.send("Hello there")
        assert tiny_app.wait_reply_done() == chat_reply([("user", "Hello there")], "transcript")
        page.get_by_role("button", name="New chat").click()


def test_edit_is_cancelled_with_escape(chat):
    if chat.replies().count() == 0:
        chat.send("Hello")
        chat.wait_reply_done()
    before = messages(chat)
    chat.page.get_by_role("button", name="Edit last message").click()
    box = chat.page.get_by_role("textbox", name="Message")
    box.press("Escape")
    assert box.input_value() == "" and chat.status() == "Edit cancelled."
    box.fill("The old lighthouse keeper")
    box.press("Enter")
    chat.wait_reply_done()
    assert messages(chat)[:-2] == before  # appended, nothing replaced


def test_copy_a_reply(chat):
    chat.page.evaluate("""() => { window.__copied = [];
        navigator.clipboard.writeText = text => { window.__copied.push(text); return Promise.resolve(); }; }""")
    chat.send("The old lighthouse keeper")
    reply = chat.wait_reply_done()
    chat.replies().last.get_by_role("button", name="Copy reply").click()
    chat.page.wait_for_function("() => window.__copied.length === 1")
    assert chat.page.evaluate("window.__copied") == [reply]
    assert chat.status() == "Reply copied to the clipboard."


def test_copy_with_the_real_clipboard(open_app, hub):
    app = open_app(setup=lambda context: context.grant_permissions(["clipboard-read", "clipboard-write"]),
                   model="test/tiny", endpoint=hub.url, **GREEDY)
    app.wait_status("Ready")
    app.send("The old lighthouse keeper")
    reply = app.wait_reply_done()
    app.replies().last.get_by_role("button", name="Copy reply").focus()
    app.page.keyboard.press("Enter")  # by keyboard
    app.page.wait_for_function("() => document.getElementById('status').textContent.startsWith('Reply copied')")
    assert app.page.evaluate("navigator.clipboard.readText()") == reply


def test_export_markdown_and_json(tiny_app):
    page = tiny_app.page
    tiny_app.send("The old lighthouse keeper")
    reply = tiny_app.wait_reply_done()
    with page.expect_download() as download:
        page.get_by_role("button", name="Export Markdown").click()
    assert download.value.suggested_filename == "conversation.md"
    markdown = open(download.value.path(), encoding="utf-8").read()
    assert markdown == ("# Conversation with test/tiny\n\n**You** (completion):\n\nThe old lighthouse keeper\n\n"
                        f"**GPT-2** (completion):\n\n{reply}\n")
    with page.expect_download() as download:
        page.get_by_role("button", name="Export JSON").click()
    assert download.value.suggested_filename == "conversation.json"
    exported = json.loads(open(download.value.path(), encoding="utf-8").read())
    assert exported["model"] == "test/tiny"
    assert exported["messages"] == [{"role": "user", "text": "The old lighthouse keeper", "mode": "completion"},
                                    {"role": "assistant", "text": reply, "mode": "completion"}]
    assert exported["settings"]["temperature"] == "0" and exported["settings"]["max_new_tokens"] == "20"


def test_conversation_is_kept_across_reloads_with_its_mode_then_deleted(tiny_app):
    page = tiny_app.page
    page.get_by_label("Mode", exact=True).select_option("chat")
    tiny_app.send("Hello there")
    first = tiny_app.wait_reply_done()
    page.reload()
    tiny_app.wait_status("Ready")
    assert messages(tiny_app) == [["user", "Hello there"], ["assistant", first]]
    assert page.get_by_label("Mode", exact=True).input_value() == "chat"
    tiny_app.send("Tell me more")  # the restored turns are part of the chat
    assert tiny_app.wait_reply_done() == chat_reply([("user", "Hello there"), ("assistant", first),
                                                     ("user", "Tell me more")], "transcript")
    page.get_by_role("button", name="Delete conversation").click()
    assert messages(tiny_app) == []
    assert page.evaluate("localStorage.getItem('browser-llm:conversation')") is None
    page.reload()
    tiny_app.wait_status("Ready")
    assert messages(tiny_app) == []


def test_a_kept_conversation_is_shown_as_text_never_html(open_app, hub):
    attack = '<img src=x onerror="window.__x=1"><b>bold</b>'
    kept = {"mode": "completion", "messages": [{"role": "user", "text": attack, "mode": "completion"},
                                               {"role": "assistant", "text": attack, "mode": "completion"},
                                               {"role": "system", "text": "junk", "mode": "chat"}]}
    app = open_app(setup=lambda context: context.add_init_script(
        f"localStorage.setItem('browser-llm:conversation', {json.dumps(json.dumps(kept))})"), endpoint=hub.url)
    app.wait_status("Runtime ready")
    assert messages(app) == [["user", attack], ["assistant", attack]]
    assert app.page.locator("#log img, #log b").count() == 0
    assert app.page.evaluate("window.__x") is None


def test_conversation_controls_have_names_and_work_by_keyboard(tiny_app):
    page = tiny_app.page
    tiny_app.send("The old lighthouse keeper")
    reply = tiny_app.wait_reply_done()
    open_settings(tiny_app)
    for name in ("New chat", "Regenerate", "Edit last message", "Export Markdown", "Export JSON",
                 "Delete conversation", "Reset to defaults", "Copy reply"):
        assert page.get_by_role("button", name=name).count() == 1, name
    for label in ("Temperature", "Top-k", "Top-p", "Repetition penalty", "Max new tokens", "Seed", "Stop strings",
                  "Choose a model"):
        assert page.get_by_label(label).count() == 1, label
    page.get_by_role("textbox", name="Message").focus()
    for _ in range(20):  # Shift+Tab from the composer back to Regenerate
        page.keyboard.press("Shift+Tab")
        if page.evaluate("document.activeElement.id") == "regenerate":
            break
    assert page.evaluate("document.activeElement.id") == "regenerate"
    assert regenerated(tiny_app, lambda: page.keyboard.press("Enter")) == reply
    assert messages(tiny_app) == [["user", "The old lighthouse keeper"], ["assistant", reply]]
