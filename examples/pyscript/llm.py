"""The example's worker (Pyodide): the model, through the Python API (worker/api.py). The page
calls the functions in __export__; they take and return JSON strings."""
import json

from worker.api import load_model

state = {"model": None, "steps": None}


async def load(request):
    """request: JSON {repo, endpoint, tiktoken}; returns the number of parameters."""
    options = json.loads(request)
    state["model"] = await load_model(options["repo"], endpoint=options["endpoint"], tiktoken=options["tiktoken"])
    return json.dumps(state["model"].n_params)


def start(prompt, max_new_tokens):
    state["steps"] = state["model"].generate(prompt, max_new_tokens=max_new_tokens, temperature=0)


def next_text():
    """The next piece of the reply as JSON, null at the end."""
    step = next(state["steps"], None)
    return json.dumps(step and step.text)


def stop():
    state["steps"].close()


__export__ = ["load", "start", "next_text", "stop"]
