"""The page's main thread (MicroPython): boot and wiring. The model lives in the "model"
worker, split over more workers when the machine has more cores (client/parallel.js, which
offers the same functions); every call to them is awaited, so the page never blocks. The
panels are modules beside this file (listed in app/main.json, which client/runtime.js gives
PyScript)."""
import chat_panel
import js
import json
import model_panel
import settings_panel
from dom import element, set_status
from pyscript import document, window, workers
from pyscript.js_modules import parallel

query = js.URLSearchParams.new(window.location.search)


async def boot():
    for name in ("model", "revision", "endpoint", "weights"):
        if query.get(name) is not None:
            element(name).value = query.get(name)
    chat_panel.restore()
    set_status("Starting the model workers…")
    lead = document.querySelector('script[name="model"]').xworker
    if query.get("model") is not None:  # read the cached weights while the worker starts
        parallel.readAhead(lead, json.dumps(model_panel.hub_model()))
    model = parallel.pageModel(lead, parallel.workerCount())  # the other workers start booting now
    await workers["model"]
    window.modelWorker = model  # the model's functions, for scripts and tests
    lead.onmessage = model_panel.show_progress
    settings_panel.setup(await model.defaults(), query)
    chat_panel.setup(model)
    model_panel.setup(model, {"unloaded": chat_panel.model_unloaded, "loaded": chat_panel.model_loaded}, query)
    set_status("Runtime ready. Choose a model and press Load model.")
    if query.get("model") is not None:
        await model_panel.load_model()


await boot()
