"""The page's main thread (MicroPython): boot and wiring. The model lives in the "model"
worker; every call to it is awaited, so the page never blocks. The panels are modules beside
this file (listed in app/main.json, which app/runtime.js gives PyScript)."""
import chat_panel
import js
import model_panel
import settings_panel
from dom import element, set_status
from pyscript import document, window, workers

query = js.URLSearchParams.new(window.location.search)


async def boot():
    for name in ("model", "revision", "endpoint"):
        if query.get(name) is not None:
            element(name).value = query.get(name)
    chat_panel.restore()
    set_status("Starting the model worker…")
    worker = await workers["model"]
    window.modelWorker = worker  # the worker's exported functions, for scripts and tests
    document.querySelector('script[name="model"]').xworker.onmessage = model_panel.show_progress
    settings_panel.setup(await worker.defaults(), query)
    chat_panel.setup(worker)
    model_panel.setup(worker, {"unloaded": chat_panel.model_unloaded, "loaded": chat_panel.model_loaded})
    set_status("Runtime ready. Choose a model and press Load model.")
    if query.get("model") is not None:
        await model_panel.load_model()


await boot()
