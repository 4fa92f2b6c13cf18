"""The chat panel: the conversation shown token by token, its controls (new chat, regenerate,
edit the last message, copy, export, delete), the stats line, and the conversation kept in
localStorage across visits. Model and user text are always set as text, never as HTML."""
import asyncio
import json

import conversation
import js
import settings_panel
from dom import (element, fixed, in_background, make, megabytes, on, save_file, set_status, store, store_text,
                 stored_text)
from pyscript import document, window

STORAGE_KEY = "browser-llm:conversation"
SET_ASIDE_KEY = STORAGE_KEY + ":set-aside"
# A reply's new tokens go into the page at most this often, and half as often when the model's
# workers use every core: every update of the page takes CPU time from them then.
SHOW_EVERY_MS = 100
PLACEHOLDERS = {
    "completion": "Write the start of a text; GPT-2 continues it. Enter sends, Shift+Enter adds a line.",
    "chat": "Write a message; the model answers it. Enter sends, Shift+Enter adds a line.",
}
state = {"worker": None, "repo": None, "loaded": False, "workers": 1, "writing": False, "stop": False, "editing": False,
         "messages": [], "memory": ""}


# -- messages on the page

def add_message(message):
    """Show a message; return the element holding its text."""
    box = make("article", "", "message " + message["role"])
    body = make("div", message["text"], "text")
    box.append(make("h2", conversation.ROLE_NAMES[message["role"]], "role"), body)
    if message["role"] == "assistant":
        copy = make("button", "Copy", "copy")
        copy.type = "button"
        copy.setAttribute("aria-label", "Copy reply")
        box.append(copy)
    log = element("log")
    log.append(box)
    follow(log, True)
    return body


def follow(log, force=False):
    """Keep the newest text in view unless the reader scrolled up."""
    if force or log.scrollHeight - log.scrollTop - log.clientHeight < 80:
        log.scrollTop = log.scrollHeight


def show_conversation():
    element("log").replaceChildren()
    for message in state["messages"]:
        add_message(message)


def truncate(index):
    """Drop the messages from `index` on, from the conversation and the page."""
    state["messages"] = state["messages"][:index]
    articles = document.querySelectorAll("#log article")
    for i in range(articles.length - 1, index - 1, -1):
        articles.item(i).remove()


# -- the conversation's state and where it is kept

def mode():
    return element("mode").value


def set_mode(value):
    element("mode").value = value
    element("message").placeholder = PLACEHOLDERS[value]


def save():
    store(STORAGE_KEY, {"mode": mode(), "messages": state["messages"]})


def restore():
    """Show the conversation kept from an earlier visit, in its mode. One that cannot be read in
    full is set aside (its text kept under SET_ASIDE_KEY) and the page says so."""
    text = stored_text(STORAGE_KEY)
    kept = conversation.restored(text)
    state["messages"] = kept["messages"]
    set_mode(kept["mode"] or mode())
    show_conversation()
    if kept["damaged"]:
        store_text(SET_ASIDE_KEY, text)
        element("log").append(make("p", "The conversation kept from your last visit could not be read in full: "
                                        "what could be read is shown, and the stored copy was set aside "
                                        "(localStorage \"" + SET_ASIDE_KEY + "\").", "notice"))
    update_controls()


def update_controls():
    """Enable what makes sense now: nothing that changes the conversation while a reply is written."""
    busy, loaded = state["writing"], state["loaded"]
    has_user = conversation.last_user_index(state["messages"]) >= 0
    element("send").disabled = busy or not loaded
    element("stop").disabled = not busy
    element("new-chat").disabled = busy
    element("regenerate").disabled = busy or not loaded or not has_user
    element("edit-last").disabled = busy or not has_user
    for id in ("export-md", "export-json", "delete-conversation"):
        element(id).disabled = busy or not state["messages"]


def set_writing(writing):
    state["writing"] = writing
    update_controls()


# -- the model's side

def model_unloaded():
    state["loaded"] = False
    update_controls()


async def model_loaded(result):
    """A model is ready: a new model picks its mode (chat for DialoGPT) unless a kept
    conversation already has one; show the memory the worker uses."""
    if not state["messages"] or (state["repo"] is not None and state["repo"] != result["repo"]):
        set_mode(conversation.default_mode(result["repo"]))
        save()
    state["repo"], state["loaded"], state["workers"] = result["repo"], True, result["workers"]
    update_controls()
    await measure_memory()
    element("stats").textContent = "Memory in use: " + state["memory"]
    element("message").focus()


async def measure_memory():
    """The memory of the (largest) model worker, e.g. "240.0 MB" or "130.2 MB in each of 2 workers"."""
    each = " in each of " + str(state["workers"]) + " workers" if state["workers"] > 1 else ""
    state["memory"] = megabytes(await state["worker"].heap_bytes()) + each


def add_token(reply, token):
    """A generated piece of text, tinted by its probability; its alternatives show on hover/tap."""
    span = make("span", token["text"], "token")
    span.style.setProperty("--p", fixed(token["prob"], 3))
    span.setAttribute("data-top", json.dumps(token["top"]))
    span.tabIndex = -1
    reply.append(span)


def show_stats(info, count, started, first):
    """The reply's numbers: tokens/s of the tokens after the first (what the prompt's pass does
    not slow), and the wait for the first token."""
    seconds = (js.performance.now() - first) / 1000
    used = info["prompt_tokens"] + count
    element("stats").textContent = (
        str(info["prompt_tokens"]) + " prompt tokens · " + str(count) + " new · "
        + fixed((count - 1) / max(seconds, 1e-3)) + " tokens/s · first token in "
        + str(round(first - started)) + " ms · context " + str(min(used, info["n_ctx"]))
        + " of " + str(info["n_ctx"]) + " (" + str(info["reused"]) + " kept from the last reply)"
        + " · memory in use " + state["memory"])


async def reply():
    """Write the model's reply to the last (user) message, token by token. Whatever happens
    (bad settings, a worker that fails), the page ends usable: what was written is kept."""
    request = conversation.reply_request(state["messages"], state["repo"])
    request["settings"] = settings_panel.current()
    body = add_message({"role": "assistant", "text": ""})
    body.parentNode.setAttribute("aria-busy", "true")
    state["stop"] = False
    set_writing(True)
    started = False
    try:
        started = await write_reply(body, request)
    except Exception as e:  # the worker failed: say so and stay usable
        set_status("Could not write a reply: " + str(e).split("\n")[0])
    finally:
        if started or body.textContent:
            state["messages"].append({"role": "assistant", "text": body.textContent, "mode": mode()})
            save()
            body.parentNode.setAttribute("aria-busy", "false")
        else:
            body.parentNode.remove()
        set_writing(False)


async def write_reply(body, request):
    """Ask the worker for the reply and show its tokens as they come; False if it refused to start."""
    worker = state["worker"]
    info = json.loads(await worker.start(json.dumps(request)))
    if "error" in info:
        set_status("Could not write a reply: " + info["error"] + " (see Generation settings)")
        return False
    started, count = js.performance.now(), 0
    first = started
    every = SHOW_EVERY_MS * (2 if worker.usesEveryCore else 1)
    try:
        while True:  # the model runs the reply ahead; each pass shows what it has written since
            tokens = json.loads(await worker.steps())
            shown = js.performance.now()
            if not count:
                first = shown
            count += len(tokens)
            for token in tokens:
                if token["text"]:
                    add_token(body, token)
            follow(element("log"))
            show_stats(info, count, started, first)
            if tokens[-1]["finish"]:
                break
            await worker.settle(max(every - (js.performance.now() - shown), 0))  # the last at once
            if state["stop"]:
                break
    finally:
        await worker.stop()
    await measure_memory()
    show_stats(info, count, started, first)
    return True


async def send():
    """Send the composer's text (replacing the last message and its reply when editing)."""
    box = element("message")
    text = box.value
    if state["writing"] or not state["loaded"] or not text.strip():
        return
    if state["editing"]:
        truncate(conversation.last_user_index(state["messages"]))
        state["editing"] = False
    box.value = ""
    message = {"role": "user", "text": text, "mode": mode()}
    state["messages"].append(message)
    add_message(message)
    save()
    await reply()
    box.focus()


async def regenerate():
    """Write the last reply again (with the current settings)."""
    if state["messages"] and state["messages"][-1]["role"] == "assistant":
        truncate(len(state["messages"]) - 1)
    await reply()


def edit_last(event):
    """Put the last user message in the composer; sending it replaces that message and its reply."""
    box = element("message")
    box.value = state["messages"][conversation.last_user_index(state["messages"])]["text"]
    state["editing"] = True
    set_status("Editing your last message: Send replaces it and its reply; Escape cancels.")
    box.focus()


def cancel_edit():
    state["editing"] = False
    element("message").value = ""
    set_status("Edit cancelled.")


def clear(event):
    """Start a new conversation (the model forgets the earlier turns)."""
    state["messages"], state["editing"] = [], False
    show_conversation()
    save()
    update_controls()
    element("message").focus()


def delete_conversation(event):
    clear(event)
    store(STORAGE_KEY, None)
    set_status("Conversation deleted from this browser.")


def export(kind):
    """An event handler that downloads the conversation as Markdown or JSON."""
    def handler(event):
        if kind == "md":
            save_file("conversation.md", conversation.as_markdown(state["messages"], state["repo"]), "text/markdown")
        else:
            text = conversation.as_json(state["messages"], state["repo"], settings_panel.current())
            save_file("conversation.json", text, "application/json")
    return handler


async def copy_reply(button):
    text = button.closest("article").querySelector(".text").textContent
    try:
        await window.navigator.clipboard.writeText(text)
        set_status("Reply copied to the clipboard.")
    except Exception:
        set_status("Could not copy: the browser refused access to the clipboard.")


# -- events

def on_log_click(event):
    if event.target.classList.contains("copy"):
        asyncio.create_task(copy_reply(event.target))
    else:
        show_alternatives(event)


def show_alternatives(event):
    tip = element("alternatives")
    target = event.target
    if not target.classList.contains("token"):
        tip.hidden = True
        return
    rows = [make("li", json.dumps(text) + "  " + fixed(100 * prob) + " %")
            for text, prob in json.loads(target.getAttribute("data-top"))]
    tip.replaceChildren(*rows)
    box = target.getBoundingClientRect()
    tip.style.left = str(int(box.left + window.scrollX)) + "px"
    tip.style.top = str(int(box.bottom + window.scrollY + 4)) + "px"
    tip.hidden = False


def hide_alternatives(event):
    element("alternatives").hidden = True


def on_key(event):
    if event.key == "Enter" and not event.shiftKey and not event.isComposing:
        event.preventDefault()
        asyncio.create_task(send())
    elif event.key == "Escape" and state["editing"]:
        cancel_edit()


def stop(event):
    state["stop"] = True


def on_mode_change(event):
    set_mode(mode())
    save()


def setup(worker):
    """Wire the composer and the conversation's controls to the model worker."""
    state["worker"] = worker
    on("composer", "submit", in_background(send))
    on("stop", "click", stop)
    on("message", "keydown", on_key)
    on("mode", "change", on_mode_change)
    on("new-chat", "click", clear)
    on("regenerate", "click", in_background(regenerate))
    on("edit-last", "click", edit_last)
    on("export-md", "click", export("md"))
    on("export-json", "click", export("json"))
    on("delete-conversation", "click", delete_conversation)
    on("log", "click", on_log_click)
    for kind in ("mouseover", "focusin"):
        on("log", kind, show_alternatives)
    on("log", "mouseleave", hide_alternatives)
