"""The generation settings panel: one labelled input per setting of GenerationSettings (from
settings_fields, made from it), defaults from the worker, the visitor's changes kept in
localStorage, and the page's query parameters for this visit only."""
import json

from dom import element, load_stored, make, on, store
from pyscript import document
from settings_fields import FIELDS

NAMES = [spec["name"] for spec in FIELDS]
LISTS = [spec["name"] for spec in FIELDS if spec["kind"] == "texts"]  # shown one text per line
STORAGE_KEY = "browser-llm:settings"
state = {"defaults": {}, "changed": {}}


def control(spec):
    """A setting's input: a number, or a textarea for a list of texts."""
    if spec["kind"] == "texts":
        node = make("textarea")
        node.rows = 2
        node.spellcheck = False
    else:
        node = make("input")
        node.type = "number"
    node.name = spec["name"]
    for attribute, value in spec["input"].items():
        node.setAttribute(attribute, value)
    return node


def labelled(spec):
    """A setting's input inside its label (a list of texts takes a whole row)."""
    if spec["kind"] == "texts":
        label = make("label", spec["label"] + ", one per line ", "wide")
    else:
        label = make("label", spec["label"] + " ")
    label.append(control(spec))
    return label


def build_form():
    """The inputs, before the Reset button. Runs when this module is imported, so the form is
    there before the model worker has booted."""
    reset_button = element("reset-settings")
    for spec in FIELDS:
        reset_button.before(labelled(spec))


def field(name):
    return document.querySelector('#settings-form [name="' + name + '"]')


def as_text(name, value):
    """A setting's value as its form field shows it (a list one text per line)."""
    if value is None:
        return ""
    if name in LISTS:
        return "\n".join(value) if isinstance(value, list) else value
    return str(value)


def current():
    """The settings to generate with, for the worker (GenerationSettings.from_dict)."""
    values = {}
    for name in NAMES:
        text = field(name).value
        if name in LISTS:
            values[name] = [line for line in text.split("\n") if line]
        elif text.strip():
            values[name] = text.strip()
    return values


def fill(values):
    for name in NAMES:
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
    state["defaults"] = {name: as_text(name, defaults[name]) for name in NAMES}
    changed = load_stored(STORAGE_KEY, {})
    state["changed"] = changed if isinstance(changed, dict) else {}
    values = dict(state["defaults"])
    values.update({name: text for name, text in state["changed"].items() if name in NAMES})
    for name in NAMES:
        if query.get(name) is not None:
            values[name] = query.get(name)
    fill(values)
    on("settings-form", "input", on_change)
    on("settings-form", "submit", lambda event: event.preventDefault())
    on("reset-settings", "click", reset)


build_form()
