"""The example page's main thread (MicroPython): reads the query, asks the worker (llm.py) to
load the model and streams its greedy continuation into the page until done or stopped."""
import json

import js
from pyscript import document, window
from pyscript.ffi import create_proxy

query = js.URLSearchParams.new(window.location.search)
state = {"stop": False}


def element(id):
    return document.getElementById(id)


def on_stop(event):
    state["stop"] = True


async def main():
    llm = (await window.llmWorker).sync
    repo = query.get("model") or "openai-community/gpt2"
    element("status").textContent = "Loading " + repo + "…"
    request = {"repo": repo, "endpoint": query.get("endpoint") or "https://huggingface.co",
               "tiktoken": window.RUNTIME.tiktoken}
    n_params = json.loads(await llm.load(json.dumps(request)))
    element("status").textContent = "Loaded " + repo + " (" + str(n_params) + " parameters). Writing…"
    await llm.start(query.get("prompt") or "Once upon a time", int(query.get("max_new_tokens") or 40))
    element("stop").addEventListener("click", create_proxy(on_stop))
    element("stop").disabled = False
    while not state["stop"]:
        text = json.loads(await llm.next_text())
        if text is None:
            break
        element("output").textContent += text
    await llm.stop()
    element("stop").disabled = True
    element("status").textContent = "Stopped." if state["stop"] else "Done."


await main()
