"""The page's main thread (MicroPython): the chat panel bound to the DOM. The model lives in
the "model" worker; every call to it is awaited, so the page never blocks."""
import asyncio
import json

import js
from pyscript import document, window, workers
from pyscript.ffi import create_proxy

SETTINGS_PARAMS = ("max_new_tokens", "temperature", "top_k", "top_p", "repetition_penalty", "seed", "stop")
query = js.URLSearchParams.new(window.location.search)
state = {"worker": None, "loaded": False, "writing": False, "stop": False}


def element(id):
    return document.getElementById(id)


def set_status(text):
    element("status").textContent = text


def megabytes(n):
    return str(round(n / 1e6, 1)) + " MB"


def show_progress(event):
    """A pushed event from the worker: download progress or a status line."""
    data = json.loads(event.data)
    if data["kind"] == "status":
        set_status(data["text"])
        return
    received = sum(f[0] for f in data["files"].values())
    total = sum(f[1] for f in data["files"].values())
    bar = element("progress")
    bar.hidden = False
    bar.max, bar.value = max(total, 1), received
    percent = " (" + str(int(100 * received / total)) + " %)" if total else ""
    set_status("Downloading " + data["file"] + ": " + megabytes(received) + " of " + megabytes(total) + percent)


def add_message(role, text):
    """Append a message element to the conversation; return the element holding its text."""
    log = element("log")
    box = document.createElement("article")
    box.className = "message " + role
    label = document.createElement("h2")
    label.className = "role"
    label.textContent = "You" if role == "user" else "GPT-2"
    body = document.createElement("div")
    body.className = "text"
    body.textContent = text
    box.append(label, body)
    log.append(box)
    follow(log, True)
    return body


def follow(log, force=False):
    """Keep the newest text in view unless the reader scrolled up."""
    if force or log.scrollHeight - log.scrollTop - log.clientHeight < 80:
        log.scrollTop = log.scrollHeight


def set_writing(writing):
    state["writing"] = writing
    element("send").disabled = writing or not state["loaded"]
    element("stop").disabled = not writing


def generation_settings():
    values = {}
    for name in SETTINGS_PARAMS:
        value = query.get(name)
        if value is not None:
            values[name] = value
    return json.dumps(values)


async def load_model():
    state["loaded"] = False
    set_writing(False)
    element("load").disabled = True
    repo = element("model").value.strip()
    set_status("Loading " + repo + "…")
    request = {"repo": repo, "revision": element("revision").value.strip() or "main",
               "endpoint": element("endpoint").value.strip(), "tiktoken": window.RUNTIME.tiktoken}
    result = json.loads(await state["worker"].load(json.dumps(request)))
    element("load").disabled = False
    element("progress").hidden = True
    if "error" in result:
        set_status("Could not load " + repo + ": " + result["error"])
        return
    state["loaded"] = True
    set_writing(False)
    set_status("Ready: " + repo + " (" + str(round(result["n_params"] / 1e6, 1)) + "M parameters, loaded in "
               + str(round(result["seconds"], 1)) + " s)")
    element("message").focus()


async def send():
    box = element("message")
    prompt = box.value
    if state["writing"] or not state["loaded"] or not prompt.strip():
        return
    box.value = ""
    add_message("user", prompt)
    reply = add_message("assistant", "")
    reply.parentNode.setAttribute("aria-busy", "true")
    state["stop"] = False
    set_writing(True)
    worker = state["worker"]
    info = json.loads(await worker.start(prompt, generation_settings()))
    started, count = js.performance.now(), 0
    while not state["stop"]:
        token = json.loads(await worker.step())
        count += 1
        if token["text"]:
            reply.append(document.createTextNode(token["text"]))
            follow(element("log"))
        seconds = (js.performance.now() - started) / 1000
        element("stats").textContent = (str(info["prompt_tokens"]) + " prompt tokens · " + str(count)
                                         + " new · " + str(round(count / max(seconds, 1e-3), 1)) + " tokens/s")
        if token["finish"]:
            break
    await worker.stop()
    reply.parentNode.setAttribute("aria-busy", "false")
    set_writing(False)
    box.focus()


def stop(event):
    state["stop"] = True


def on_key(event):
    if event.key == "Enter" and not event.shiftKey and not event.isComposing:
        event.preventDefault()
        asyncio.create_task(send())


def on(id, kind, handler):
    element(id).addEventListener(kind, create_proxy(handler))


def in_background(work):
    """An event handler that keeps the form from submitting and runs `work` without waiting."""
    def handler(event):
        event.preventDefault()
        asyncio.create_task(work())
    return handler


async def boot():
    for name in ("model", "revision", "endpoint"):
        value = query.get(name)
        if value is not None:
            element(name).value = value
    set_status("Starting the model worker…")
    state["worker"] = await workers["model"]
    window.modelWorker = state["worker"]  # the worker's exported functions, for scripts and tests
    document.querySelector('script[name="model"]').xworker.onmessage = show_progress
    on("model-form", "submit", in_background(load_model))
    on("composer", "submit", in_background(send))
    on("stop", "click", stop)
    on("message", "keydown", on_key)
    element("load").disabled = False
    set_status("Runtime ready. Choose a model and press Load model.")
    if query.get("model") is not None:
        await load_model()


await boot()
