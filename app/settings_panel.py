"""The generation settings panel: defaults from the worker (GenerationSettings), the visitor's
changes kept in localStorage, and the page's query parameters for this visit only."""
import json

from dom import load_stored, on, store
from pyscript import document

FIELDS = ("temperature", "top_k", "top_p", "repetition_penalty", "max_new_tokens", "seed", "stop")
STORAGE_KEY = "browser-llm:settings"
state = {"defaults": {}, "changed": {}}


def field(name):
    return document.querySelector('#settings-form [name="' + name + '"]')


def as_text(name, value):
    """A setting's value as its form field shows it (stop strings one per line)."""
    if value is None:
        return ""
    if name == "stop":
        return "\n".join(value) if isinstance(value, list) else value
    return str(value)


def current():
    """The settings to generate with, for the worker (GenerationSettings.from_dict)."""
    values = {"stop": [line for line in field("stop").value.split("\n") if line]}
    for name in FIELDS:
        if name != "stop" and field(name).value.strip():
            values[name] = field(name).value.strip()
    return values


def fill(values):
    for name in FIELDS:
        field(name).value = values[name]


def on_change(event):
    """Keep what the visitor changed (only that: defaults may change with a new version)."""
    name = event.target.name
    state["changed"][name] = event.target.value
    store(STORAGE_KEY, state["changed"])


def reset(event):
    state["changed"] = {}
    store(STORAGE_KEY, None)
    fill(state["defaults"])


def setup(defaults_json, query):
    """Fill the form: the defaults, then the stored changes, then this visit's query parameters."""
    defaults = json.loads(defaults_json)
    state["defaults"] = {name: as_text(name, defaults[name]) for name in FIELDS}
    changed = load_stored(STORAGE_KEY, {})
    state["changed"] = changed if isinstance(changed, dict) else {}
    values = dict(state["defaults"])
    values.update({name: text for name, text in state["changed"].items() if name in FIELDS})
    for name in FIELDS:
        if query.get(name) is not None:
            values[name] = query.get(name)
    fill(values)
    on("settings-form", "input", on_change)
    on("settings-form", "submit", lambda event: event.preventDefault())
    on("reset-settings", "click", reset)
