"""The model panel: choosing a model and its download size, loading it (from the hub, the
browser cache or the visitor's disk) with progress, and the cache manager."""
import asyncio
import json

import js
from dom import element, fixed, in_background, make, megabytes, on, set_status
from pyscript import window

LOCAL_FILES = ("config.json", "model.safetensors", "vocab.json", "merges.txt")
SIZE_DELAY = 0.7  # seconds of no typing before the hub is asked for a model's size
state = {"worker": None, "hooks": None, "cached": [], "size_request": 0, "cancelled": False, "workers_chosen": False}


def percent(received, total):
    return " (" + str(int(100 * received / total)) + " %)" if total else ""


def show_progress(event):
    """A pushed event from the worker: a status line, or the progress of each file and of all."""
    data = json.loads(event.data)
    if data["kind"] == "status":
        set_status(data["text"])
    if data["kind"] != "progress":
        return
    files = data["files"]
    received = sum(f[0] for f in files.values())
    total = sum(f[1] for f in files.values())
    bar = element("progress")
    bar.hidden = False
    bar.max, bar.value = max(total, 1), received
    rows = [make("li", name + ": " + megabytes(got) + " of " + megabytes(size) + percent(got, size))
            for name, (got, size) in files.items()]
    element("file-progress").replaceChildren(*rows)
    got, size = files[data["file"]]
    verb = "Reading " if data["cached"] else "Downloading "
    speed = " · " + megabytes(data["speed"]) + "/s" if data["speed"] and not data["cached"] else ""
    host = " from " + data["host"] if data.get("host") else ""
    set_status(verb + data["file"] + host + ": " + megabytes(got) + " of " + megabytes(size) + percent(got, size)
               + " · all files " + megabytes(received) + " of " + megabytes(total) + percent(received, total) + speed)


def hub_model():
    """The hub model the form names: {repo, revision, endpoint}."""
    return {"repo": element("model").value.strip(), "revision": element("revision").value.strip() or "main",
            "endpoint": element("endpoint").value.strip()}


async def load_model():
    """Load the model named in the form from the hub (or the browser cache)."""
    request = hub_model()
    await run_load(request["repo"], request)


async def run_load(label, request, note=""):
    """Ask the worker to load a model and say how it went in the status line (`note` after Ready)."""
    state["hooks"]["unloaded"]()
    state["size_request"] += 1  # a size asked for meanwhile is stale
    element("model-size").textContent = ""
    element("load").disabled = element("local-files").disabled = True
    element("cancel-load").hidden, state["cancelled"] = False, False
    set_status("Loading " + label + "…")
    element("file-progress").replaceChildren()
    state["worker"].setWorkers(workers_wanted())
    request["tiktoken"] = window.RUNTIME.tiktoken
    request["weights"] = element("weights").value
    try:
        result = json.loads(await state["worker"].load(json.dumps(request)))
    except Exception as e:  # a bug or a crash in the worker: say so and stay usable
        result = {"error": "the model worker failed: " + str(e).split("\n")[0]}
    element("load").disabled = element("local-files").disabled = False
    element("cancel-load").hidden = True
    element("progress").hidden = True
    element("file-progress").replaceChildren()
    await refresh_cache()
    if "error" in result and state["cancelled"]:
        set_status("Cancelled loading " + label + ". What was downloaded is kept: Load model goes on from there.")
        return
    if raise_workers(result):
        await run_load(label, request, " (it needs " + str(result["workers_needed"]) + " workers here)")
        return
    if "error" in result:
        set_status("Could not load " + label + ": " + result["error"])
        return
    set_status("Ready: " + label + " (" + fixed(result["n_params"] / 1e6) + "M parameters) " + load_summary(result)
               + workers_summary(result) + note + weights_summary(request["weights"], result))
    fold(label + " · " + fixed(result["n_params"] / 1e6) + "M parameters"
         + (" · " + str(result["workers"]) + " workers" if result["workers"] > 1 else "")
         + (" · int8" if result["weights"] == "int8" else ""))
    await state["hooks"]["loaded"](result)


def fold(line):
    """Fold the panel to one line (the model, its size, its workers, Change model), so the
    conversation comes first; the status line hides while it only says Ready."""
    element("model-line").textContent = line
    element("model-summary").hidden = False
    element("model-choice-area").hidden = True
    element("model-panel").classList.add("folded")
    element("change-model").setAttribute("aria-expanded", "false")


def unfold(event=None):
    """Show the model form again (Change model); the loaded model stays until another loads."""
    element("model-summary").hidden = True
    element("model-choice-area").hidden = False
    element("model-panel").classList.remove("folded")
    element("change-model").setAttribute("aria-expanded", "true")
    if event is not None:
        element("model").focus()


async def cancel_load():
    """Stop the load within a chunk (the worker keeps what it downloaded for the next load)."""
    state["cancelled"] = True
    element("cancel-load").hidden = True
    set_status("Cancelling…")
    await state["worker"].cancel()


def workers_wanted():
    """The Workers field's count (1 to its max), or the count in use if the field is not a number."""
    field = element("workers")
    try:
        return min(max(int(field.value), 1), int(field.max))
    except ValueError:
        return state["worker"].n


def raise_workers(result):
    """Whether a load refused for want of workers should run again over as many as it needs:
    when the visitor did not choose the count (?workers= or the Workers field) and the field allows it."""
    needed = result.get("workers_needed")
    if not needed or state["workers_chosen"] or not workers_wanted() < needed <= int(element("workers").max):
        return False
    element("workers").value = str(needed)
    return True


def choose_workers(event):
    state["workers_chosen"] = True


def workers_summary(result):
    return " · split over " + str(result["workers"]) + " workers" if result["workers"] > 1 else ""


def weights_summary(asked, result):
    if result["weights"] == "int8":
        return " · int8 weights"
    return " · float32 weights: int8 needs WebAssembly SIMD" if asked == "int8" else ""


def load_summary(result):
    """How the files came, e.g. "loaded from cache in 0.4 s", and why nothing was cached."""
    seconds = fixed(result["seconds"]) + " s"
    if "local" in result["repo"]:
        return "loaded from your disk in " + seconds
    if result["from_cache"]:
        text = "loaded from cache in " + seconds
    else:
        host = " from " + result["host"] if result.get("host") else ""
        text = "downloaded " + megabytes(result["downloaded"]) + host + " and loaded in " + seconds
    if result["not_cached"]:
        text += " · not cached: " + result["not_cached"] + "; running from memory"
    return text


# -- choosing a model, and what it will cost to download

def on_choice(event):
    """A suggested model was picked: put it in the Model field ("Other" leaves the field to type in)."""
    if event.target.value:
        element("model").value = event.target.value
        ask_size(0)
    else:
        element("model").focus()


def on_model_typed(event):
    """Keep the picker in step with the field, and ask for the size once typing pauses."""
    sync_choice()
    ask_size(SIZE_DELAY)


def sync_choice():
    """Show the typed model in the picker if it is a suggested one, else "Other"."""
    choice = element("model-choice")
    choice.value = element("model").value.strip()
    if choice.selectedIndex < 0:
        choice.value = ""


def ask_size(delay):
    state["size_request"] += 1
    asyncio.create_task(show_size(state["size_request"], delay))


async def show_size(request, delay):
    """Ask the worker (the Hub's file listing) how big the chosen model's weights are, unless a
    newer question or a load came meanwhile."""
    await asyncio.sleep(delay)
    model = hub_model()
    if request != state["size_request"] or not model["repo"]:
        return
    element("model-size").textContent = "Checking the size of " + model["repo"] + "…"
    try:
        answer = json.loads(await state["worker"].model_size(json.dumps(model)))
    except Exception as e:  # a crash in the worker: say so rather than "Checking…" for ever
        answer = {"error": "the model worker failed: " + str(e).split("\n")[0]}
    if request == state["size_request"]:
        element("model-size").textContent = size_text(model["repo"], answer)


def size_text(repo, answer):
    if "error" in answer:
        return repo + ": size unknown (" + answer["error"] + ")"
    if answer["cached"]:
        return repo + ": cached (" + megabytes(answer["bytes"]) + ", no download)"
    if not answer["bytes"]:
        return repo + ": no weights on the Hub"
    host = " from " + answer["host"] if answer["host"] else ""
    return repo + ": ≈ " + approx_megabytes(answer["bytes"]) + " to download" + host


def approx_megabytes(n):
    """Whole megabytes from 10 MB on ("≈ 498 MB"), one decimal below."""
    return str(round(n / 1e6)) + " MB" if n >= 1e7 else megabytes(n)


# -- the visitor's own files

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


# -- the cache manager

async def refresh_cache():
    """Show the cached models and the storage used and available."""
    info = json.loads(await state["worker"].cache_models())
    state["cached"] = info["models"]
    rows = [cached_row(index, model) for index, model in enumerate(info["models"])]
    if not rows:
        rows.append(make("li", info["off"] or "No model is cached yet."))
    element("cached-models").replaceChildren(*rows)
    storage = info["storage"]
    persisted = await window.navigator.storage.persisted()
    element("storage").textContent = ("Storage: " + megabytes(storage["usage"]) + " used of " + megabytes(storage["quota"])
                                      + " available to this page" + (" · kept persistently" if persisted else ""))


def cached_row(index, model):
    """One cached model: what it holds and a Delete button."""
    row = make("li")
    text = make("span", model["repo"] + " @ " + model["revision"][:12] + " · " + megabytes(model["bytes"]) + " · "
                + str(len(model["files"])) + " files" + (" · partial download" if model["partial"] else ""))
    button = make("button", "Delete")
    button.type = "button"
    button.setAttribute("aria-label", "Delete " + model["repo"] + " from the cache")
    button.setAttribute("data-index", str(index))
    row.append(text, button)
    return row


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


def setup(worker, hooks, query):
    """Wire the model form, the picker, local files, drag and drop and the cache manager.
    hooks: {"unloaded": called when a load begins, "loaded": awaited with the load's result};
    query: the page's URL parameters (?workers= chooses the worker count)."""
    state["worker"], state["hooks"] = worker, hooks
    element("workers").value = str(worker.n)
    state["workers_chosen"] = query.has("workers")
    on("workers", "input", choose_workers)
    sync_choice()
    on("model-form", "submit", in_background(load_model))
    on("cancel-load", "click", in_background(cancel_load))
    on("change-model", "click", unfold)
    on("model-choice", "change", on_choice)
    for id in ("model", "revision", "endpoint"):
        on(id, "input", on_model_typed)
    on("local-files", "change", on_files_picked)
    for kind in ("dragover", "dragleave"):
        on("drop-zone", kind, on_drag)
    on("drop-zone", "drop", on_drop)
    on("cached-models", "click", on_cache_click)
    on("clear-cache", "click", in_background(lambda: delete_cached({})))
    on("persist", "click", in_background(persist_storage))
    on("cache-manager", "toggle", in_background(refresh_cache))
    element("local-files").disabled = element("load").disabled = False
