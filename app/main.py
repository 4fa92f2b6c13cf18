"""The page's main thread (MicroPython): the chat panel bound to the DOM. The model lives in
the "model" worker; every call to it is awaited, so the page never blocks."""
import asyncio
import json

import js
from pyscript import document, window, workers
from pyscript.ffi import create_proxy

SETTINGS_PARAMS = ("max_new_tokens", "temperature", "top_k", "top_p", "repetition_penalty", "seed", "stop")
query = js.URLSearchParams.new(window.location.search)
state = {"worker": None, "loaded": False, "writing": False, "stop": False, "turns": []}


def element(id):
    return document.getElementById(id)


def set_status(text):
    element("status").textContent = text


def megabytes(n):
    return str(round(n / 1e6, 1)) + " MB"


def percent(received, total):
    return " (" + str(int(100 * received / total)) + " %)" if total else ""


def show_progress(event):
    """A pushed event from the worker: a status line, or the progress of each file and of all."""
    data = json.loads(event.data)
    if data["kind"] == "status":
        set_status(data["text"])
        return
    files = data["files"]
    received = sum(f[0] for f in files.values())
    total = sum(f[1] for f in files.values())
    bar = element("progress")
    bar.hidden = False
    bar.max, bar.value = max(total, 1), received
    rows = []
    for name, (got, size) in files.items():
        row = document.createElement("li")
        row.textContent = name + ": " + megabytes(got) + " of " + megabytes(size) + percent(got, size)
        rows.append(row)
    element("file-progress").replaceChildren(*rows)
    got, size = files[data["file"]]
    verb = "Reading " if data["cached"] else "Downloading "
    speed = " · " + megabytes(data["speed"]) + "/s" if data["speed"] and not data["cached"] else ""
    set_status(verb + data["file"] + ": " + megabytes(got) + " of " + megabytes(size) + percent(got, size)
               + " · all files " + megabytes(received) + " of " + megabytes(total) + percent(received, total) + speed)


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
    return values


def chat_style(repo):
    """Chat-tuned GPT-2s (DialoGPT) join turns with <|endoftext|>; others read a transcript."""
    return "eot" if "dialogpt" in repo.lower() else "transcript"


async def load_model():
    """Load the model named in the form from the hub (or the browser cache)."""
    request = {"repo": element("model").value.strip(), "revision": element("revision").value.strip() or "main",
               "endpoint": element("endpoint").value.strip()}
    await run_load(request["repo"], request)


async def run_load(label, request):
    """Ask the worker to load a model and say how it went in the status line."""
    state["loaded"] = False
    set_writing(False)
    element("load").disabled = element("local-files").disabled = True
    set_status("Loading " + label + "…")
    element("file-progress").replaceChildren()
    request["tiktoken"] = window.RUNTIME.tiktoken
    try:
        result = json.loads(await state["worker"].load(json.dumps(request)))
    except Exception as e:  # a bug or a crash in the worker: say so and stay usable
        result = {"error": "the model worker failed: " + str(e).split("\n")[0]}
    element("load").disabled = element("local-files").disabled = False
    element("progress").hidden = True
    element("file-progress").replaceChildren()
    await refresh_cache()
    if "error" in result:
        set_status("Could not load " + label + ": " + result["error"])
        return
    state["loaded"] = True
    set_writing(False)
    set_status("Ready: " + label + " (" + str(round(result["n_params"] / 1e6, 1)) + "M parameters) " + load_summary(result))
    element("message").focus()


def load_summary(result):
    """How the files came, e.g. "loaded from cache in 0.4 s", and why nothing was cached."""
    seconds = str(round(result["seconds"], 1)) + " s"
    if "local" in result["repo"]:
        return "loaded from your disk in " + seconds
    if result["from_cache"]:
        text = "loaded from cache in " + seconds
    else:
        text = "downloaded " + megabytes(result["downloaded"]) + " and loaded in " + seconds
    if result["not_cached"]:
        text += " · not cached: " + result["not_cached"] + "; running from memory"
    return text


LOCAL_FILES = ("config.json", "model.safetensors", "vocab.json", "merges.txt")


async def load_local(urls):
    """Load a model from files on the visitor's disk, given as {name: blob URL}: the worker
    reads them through these (absolute) URLs; nothing is uploaded or copied here."""
    missing = [name for name in LOCAL_FILES if name not in urls and not (name == "model.safetensors" and any(
        n.endswith((".safetensors", ".bin")) for n in urls))]
    if missing:
        set_status("Could not load local files: please also choose " + ", ".join(missing))
    else:
        await run_load("local files", {"local": urls})
    for url in urls.values():
        js.URL.revokeObjectURL(url)


def blob_urls(files):
    """{name: blob URL} for a FileList (read at once: the list empties when the input is reset)."""
    urls = {}
    for i in range(files.length):
        urls[files.item(i).name] = js.URL.createObjectURL(files.item(i))
    return urls


def on_files_picked(event):
    asyncio.create_task(load_local(blob_urls(event.target.files)))
    event.target.value = ""


def on_drag(event):
    event.preventDefault()
    element("drop-zone").classList.toggle("dragging", event.type == "dragover")


def on_drop(event):
    on_drag(event)
    if not element("local-files").disabled:
        asyncio.create_task(load_local(blob_urls(event.dataTransfer.files)))


async def refresh_cache():
    """Show the cached models and the storage used and available."""
    info = json.loads(await state["worker"].cache_models())
    state["cached"] = info["models"]
    rows = []
    for index, model in enumerate(info["models"]):
        row = document.createElement("li")
        text = document.createElement("span")
        text.textContent = (model["repo"] + " @ " + model["revision"][:12] + " · " + megabytes(model["bytes"]) + " · "
                            + str(len(model["files"])) + " files" + (" · partial download" if model["partial"] else ""))
        button = document.createElement("button")
        button.type = "button"
        button.textContent = "Delete"
        button.setAttribute("aria-label", "Delete " + model["repo"] + " from the cache")
        button.setAttribute("data-index", str(index))
        row.append(text, button)
        rows.append(row)
    if not rows:
        empty = document.createElement("li")
        empty.textContent = info["off"] or "No model is cached yet."
        rows.append(empty)
    element("cached-models").replaceChildren(*rows)
    storage = info["storage"]
    persisted = await window.navigator.storage.persisted()
    element("storage").textContent = ("Storage: " + megabytes(storage["usage"]) + " used of " + megabytes(storage["quota"])
                                      + " available to this page" + (" · kept persistently" if persisted else ""))


async def delete_cached(which):
    await state["worker"].cache_delete(json.dumps(which))
    await refresh_cache()


def on_cache_click(event):
    index = event.target.getAttribute("data-index")
    if index is not None:
        model = state["cached"][int(index)]
        asyncio.create_task(delete_cached({k: model[k] for k in ("endpoint", "repo", "revision")}))


async def persist_storage():
    """Ask the browser to keep the cache when storage runs low (it may refuse)."""
    granted = await window.navigator.storage.persist()
    set_status("The browser will keep cached models." if granted else
               "The browser declined persistent storage; cached models may be evicted when space runs low.")
    await refresh_cache()


def setup_model_panel():
    """Wire the local-file picker, drag and drop and the cache manager."""
    on("local-files", "change", on_files_picked)
    for kind in ("dragover", "dragleave"):
        on("drop-zone", kind, on_drag)
    on("drop-zone", "drop", on_drop)
    on("cached-models", "click", on_cache_click)
    on("clear-cache", "click", in_background(lambda: delete_cached({})))
    on("persist", "click", in_background(persist_storage))
    on("cache-manager", "toggle", in_background(refresh_cache))
    element("local-files").disabled = False


def add_token(reply, token):
    """A generated piece of text, tinted by its probability; its alternatives show on hover/tap."""
    span = document.createElement("span")
    span.className = "token"
    span.textContent = token["text"]
    span.style.setProperty("--p", str(round(token["prob"], 3)))
    span.setAttribute("data-top", json.dumps(token["top"]))
    span.tabIndex = -1
    reply.append(span)


def show_alternatives(event):
    tip = element("alternatives")
    target = event.target
    if not target.classList.contains("token"):
        tip.hidden = True
        return
    rows = []
    for text, prob in json.loads(target.getAttribute("data-top")):
        row = document.createElement("li")
        row.textContent = json.dumps(text) + "  " + str(round(100 * prob, 1)) + " %"
        rows.append(row)
    tip.replaceChildren(*rows)
    box = target.getBoundingClientRect()
    tip.style.left = str(int(box.left + window.scrollX)) + "px"
    tip.style.top = str(int(box.bottom + window.scrollY + 4)) + "px"
    tip.hidden = False


def hide_alternatives(event):
    element("alternatives").hidden = True


def show_stats(info, count, started):
    seconds = (js.performance.now() - started) / 1000
    used = info["prompt_tokens"] + count
    element("stats").textContent = (
        str(info["prompt_tokens"]) + " prompt tokens · " + str(count) + " new · "
        + str(round(count / max(seconds, 1e-3), 1)) + " tokens/s · context " + str(min(used, info["n_ctx"]))
        + " of " + str(info["n_ctx"]))


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
    request = {"settings": generation_settings()}
    if element("mode").value == "chat":
        state["turns"].append(["user", prompt])
        request["turns"], request["style"] = state["turns"], chat_style(element("model").value)
    else:
        request["prompt"] = prompt
    info = json.loads(await worker.start(json.dumps(request)))
    started, count = js.performance.now(), 0
    while not state["stop"]:
        token = json.loads(await worker.step())
        count += 1
        if token["text"]:
            add_token(reply, token)
            follow(element("log"))
        show_stats(info, count, started)
        if token["finish"]:
            break
    await worker.stop()
    if element("mode").value == "chat":
        state["turns"].append(["assistant", reply.textContent])
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
    setup_model_panel()
    on("composer", "submit", in_background(send))
    on("stop", "click", stop)
    on("message", "keydown", on_key)
    for kind in ("mouseover", "focusin", "click"):
        on("log", kind, show_alternatives)
    on("log", "mouseleave", hide_alternatives)
    element("load").disabled = False
    set_status("Runtime ready. Choose a model and press Load model.")
    if query.get("model") is not None:
        await load_model()


await boot()
