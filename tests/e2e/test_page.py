"""The page in a real browser: boot, load through the local hub, chat token by token."""
from __future__ import annotations

import json

import pytest

from support import ROOT, fixture_model

GREEDY_40 = dict(temperature=0, max_new_tokens=40)


def cpython_reply(prompt: str, **settings) -> tuple[str, int]:
    steps = list(fixture_model("tiny").generate(prompt, **settings))
    return "".join(s.text for s in steps), len(steps)


def test_reply_grows_token_by_token_and_equals_cpython(chat):
    prompt = "The old lighthouse keeper"
    expected, n_tokens = cpython_reply(prompt, **GREEDY_40)
    assert n_tokens >= 10  # long enough to see it grow
    chat.page.evaluate("""() => {
        window.__lengths = [];
        new MutationObserver(() => {
            const r = [...document.querySelectorAll('#log article.assistant .text')].pop();
            if (r) window.__lengths.push(r.textContent.length);
        }).observe(document.getElementById('log'), {childList: true, subtree: true, characterData: true});
    }""")
    chat.send(prompt)
    assert chat.page.locator("#log article.user .text").last.text_content() == prompt  # shown at once
    assert chat.wait_reply_done() == expected
    lengths = chat.page.evaluate("window.__lengths")
    assert lengths[-1] == len(expected)
    assert any(0 < n < len(expected) for n in lengths)  # shown while it was written, not all at the end
    assert "tokens/s" in chat.page.text_content("#stats")


SPY_SETTLE = """() => {
    const m = window.modelWorker, settle = m.settle.bind(m);
    window.__waits = [];
    m.settle = ms => { window.__waits.push(ms); return settle(ms); };
}"""


def test_the_reply_is_shown_half_as_often_when_the_workers_use_every_core(chat, open_app, hub):
    """Between two updates of the reply the page waits up to 100 ms (settle), or 200 ms when the
    model's workers use every core: a machine of one core here (navigator.hardwareConcurrency),
    and the shared page as its machine makes it."""
    one_core = open_app(lambda context: context.add_init_script(
        "Object.defineProperty(Navigator.prototype, 'hardwareConcurrency', { get: () => 1 })"),
        model="test/tiny", endpoint=hub.url, temperature=0, max_new_tokens=40)
    one_core.wait_status("Ready")
    for app in (one_core, chat):
        app.page.evaluate(SPY_SETTLE)
        app.send("The old lighthouse keeper")
        app.wait_reply_done()
        every_core, waits = app.page.evaluate("[window.modelWorker.usesEveryCore, window.__waits]")
        assert waits and (max(waits) > 100) == every_core, (every_core, waits)
        assert max(waits) <= 200
    assert one_core.page.evaluate("window.modelWorker.usesEveryCore") is True


def test_user_text_is_shown_as_text_never_html(chat):
    attack = '<img src=x onerror="window.__x=1"><b>bold</b>'
    chat.send(attack)
    chat.wait_reply_done()
    assert chat.page.locator("#log article.user .text").last.text_content() == attack
    assert chat.page.locator("#log img, #log b").count() == 0
    assert chat.page.evaluate("window.__x") is None


def test_stop_ends_the_reply_within_a_token_and_the_next_prompt_works(chat):
    long_prompt = "Once upon a time there was"
    steps = list(fixture_model("tiny").generate(long_prompt, **GREEDY_40))
    assert len(steps) == 40  # would run to the limit if not stopped
    chat.page.evaluate("""() => new MutationObserver((_, observer) => {
        const reply = [...document.querySelectorAll('#log article.assistant .text')].pop();
        if (reply && reply.textContent.length > 0) { document.getElementById('stop').click(); observer.disconnect(); }
    }).observe(document.getElementById('log'), {childList: true, subtree: true, characterData: true})""")
    chat.send(long_prompt)
    stopped = chat.wait_reply_done()
    pieces = [s.text for s in steps]
    first = next(i for i, piece in enumerate(pieces) if piece)
    assert stopped in ("".join(pieces[:first + 1]), "".join(pieces[:first + 2]))  # at most one more token
    assert chat.page.get_by_role("button", name="Send").is_enabled()
    assert chat.page.get_by_role("button", name="Stop").is_disabled()
    expected, _ = cpython_reply("The old lighthouse keeper", **GREEDY_40)
    chat.send("The old lighthouse keeper")
    assert chat.wait_reply_done() == expected


def test_send_is_disabled_while_writing_and_enter_sends(chat):
    box = chat.page.get_by_role("textbox", name="Message")
    box.fill("Once upon a time there was")
    before = chat.replies().count()
    box.press("Enter")
    chat.page.wait_for_function(f"() => document.querySelectorAll('#log article.assistant').length > {before}")
    assert chat.page.get_by_role("button", name="Send").is_disabled()
    box.type("first line")
    box.press("Shift+Enter")
    box.type("second line")
    assert box.input_value() == "first line\nsecond line"  # typing works at once while it writes
    chat.wait_reply_done()
    assert chat.page.get_by_role("button", name="Send").is_enabled()
    box.fill("")


def test_main_thread_has_no_long_tasks_while_generating(chat):
    chat.page.evaluate("window.__longTasks.length = 0")
    chat.page.evaluate("""() => {
        window.__keyDelays = [];
        document.addEventListener('keydown', e => window.__keyDelays.push(performance.now() - e.timeStamp));
    }""")
    chat.send("Once upon a time there was")
    for key in "abc":
        chat.page.keyboard.press(key)
    chat.wait_reply_done()
    assert chat.page.evaluate("window.__longTasks.filter(t => t.duration > 100)") == []
    delays = chat.page.evaluate("window.__keyDelays")
    assert len(delays) == 3 and max(delays) < 100


def test_twenty_replies_in_a_row_do_not_grow_the_worker(chat):
    def reply(n: int) -> None:
        chat.send(f"Reply number {n} is about")
        chat.wait_reply_done()
    for n in range(3):
        reply(n)
    heap = chat.worker("heap_bytes")
    for n in range(3, 20):
        reply(n)
    assert chat.replies().count() >= 20
    assert chat.worker("heap_bytes") == heap
    at_bottom = "(() => { const log = document.getElementById('log');" \
                " return log.scrollHeight > log.clientHeight && log.scrollHeight - log.scrollTop - log.clientHeight < 2; })()"
    assert chat.page.evaluate(at_bottom)  # the panel followed the text


def test_accessible_names(chat):
    page = chat.page
    assert page.get_by_role("textbox", name="Message").count() == 1
    assert page.get_by_role("button", name="Send").count() == 1
    assert page.get_by_role("button", name="Stop").count() == 1
    log = page.get_by_role("log")
    assert log.get_attribute("aria-live") == "polite"


def test_screenshot_of_a_conversation(chat):
    """The README's picture (copy test-results/chat.png to docs/screenshot.png to update it)."""
    if chat.replies().count() == 0:
        chat.send("The old lighthouse keeper")
        chat.wait_reply_done()
    path = ROOT / "test-results" / "chat.png"
    chat.page.screenshot(path=str(path))
    assert path.stat().st_size > 10_000


def test_seeded_sampling_gives_the_same_tokens_as_cpython(open_app, hub):
    settings = dict(temperature=0.9, top_k=50, top_p=0.9, repetition_penalty=1.2, seed=11, max_new_tokens=30)
    app = open_app(model="test/tiny", endpoint=hub.url, **settings)
    app.wait_status("Ready")
    app.send("Once upon a time")
    expected = "".join(s.text for s in fixture_model("tiny").generate("Once upon a time", **settings))
    assert app.wait_reply_done() == expected


def test_each_token_shows_its_probability_and_alternatives(chat):
    prompt = "The old lighthouse keeper"
    steps = [s for s in fixture_model("tiny").generate(prompt, **GREEDY_40) if s.text]
    chat.send(prompt)
    chat.wait_reply_done()
    tokens = chat.replies().last.locator(".token")
    assert tokens.count() == len(steps)
    probs = [float(tokens.nth(i).evaluate("t => t.style.getPropertyValue('--p')")) for i in range(len(steps))]
    assert probs == pytest.approx([round(s.prob, 3) for s in steps], abs=2e-3)
    tokens.nth(2).hover()
    tip = chat.page.get_by_role("tooltip")
    assert tip.is_visible()
    rows = tip.locator("li").all_text_contents()
    tokenizer = fixture_model("tiny").tokenizer
    expected = [f'{json.dumps(tokenizer.decode([i]))}  {round(100 * p, 1)} %' for i, p in steps[2].top]
    assert rows == expected
    chat.page.mouse.move(0, 0)
    chat.page.locator("#log").dispatch_event("mouseleave")
    assert tip.is_hidden()


def test_chat_mode_keeps_the_conversation_and_runs_only_each_turns_new_tokens(chat):
    """Each turn's reply equals a cold CPython run, and the page's KV cache keeps what the last
    turn ran: the stats say how many prompt tokens were kept, as a CPython session counts them."""
    from engine import GenerationSettings
    from engine.chat import chat_prompt
    model = fixture_model("tiny")
    mode = chat.page.get_by_label("Mode", exact=True)
    mode.select_option("chat")
    chat.page.get_by_role("button", name="New chat").click()
    chat.page.evaluate("document.getElementById('settings').open = true")
    max_new_tokens = chat.page.get_by_label("Max new tokens")
    max_new_tokens.fill("8")  # short replies: three turns fit the tiny model's 64 positions
    session, turns, kept = model.session(), [], []
    try:
        for message in ("Hi", "Go on", "Why"):
            turns.append(("user", message))
            ids, stops = chat_prompt(turns, model.tokenizer, "transcript", session.cached)  # as the worker's
            settings = GenerationSettings(stop=stops, temperature=0, max_new_tokens=8)
            expected = "".join(s.text for s in model.generate(ids, settings))
            kept.append(session.decoder(model.tokenizer, ids, settings).reused)
            assert "".join(s.text for s in model.generate(ids, settings, session)) == expected
            chat.send(message)
            assert chat.wait_reply_done() == expected
            assert f"({kept[-1]} kept from the last reply)" in chat.page.text_content("#stats")
            turns.append(("assistant", expected))
        assert kept[0] == 0 and kept[1] > 0 and kept[2] > kept[1]
    finally:
        max_new_tokens.fill("40")
        chat.page.evaluate("document.getElementById('settings').open = false")
        mode.select_option("completion")
