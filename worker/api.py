"""The Python API for PyScript pages: a model in your own worker, as a Python object.

In a Pyodide worker configured by the app's pyscript.toml (client/runtime.js `startWorker`
starts one from any page), the engine is importable as it is in CPython:

    from worker.api import load_model
    model = await load_model("openai-community/gpt2", tiktoken=runtime_tiktoken_url)
    for step in model.generate("Once upon a time", max_new_tokens=40, temperature=0):
        step.text, step.prob

`model` is the engine's Model, the same object `browser_llm.load_model` gives in CPython
(generate, logits, tokenizer); the files come through the browser's cache like the app's."""
from __future__ import annotations

from collections.abc import Callable

from engine import Model
from model_loader.hub import DEFAULT_ENDPOINT
from worker.loading import load_checkpoint
from worker.protocol import LoadRequest


async def load_model(repo: str | None = None, *, tiktoken: str, revision: str = "main", endpoint: str = DEFAULT_ENDPOINT,
                     files: dict[str, str] | None = None, on_progress: Callable[..., None] | None = None) -> Model:
    """A Hub repository's GPT-2, or one made of `files` ({file name: URL}, e.g. blob: URLs of
    the visitor's files). `tiktoken` is the base URL of the npm tiktoken package (the page's
    RUNTIME.tiktoken); `on_progress(event)` receives the load's events (worker.protocol's
    Progress, Status). Raises OSError saying what went wrong."""
    request = LoadRequest(tiktoken=tiktoken, repo=repo, revision=revision, endpoint=endpoint, local=files)
    model, reply = await load_checkpoint(request, on_progress or (lambda event: None))
    if model is None:
        raise OSError(reply.error)
    return model
