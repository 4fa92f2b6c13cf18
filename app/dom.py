"""Small DOM helpers shared by the panels (MicroPython, main thread)."""
import asyncio
import json

import js
from pyscript import document, window
from pyscript.ffi import create_proxy, to_js


def element(id):
    return document.getElementById(id)


def make(tag, text="", class_name=""):
    """A new element holding `text` as text (never parsed as HTML)."""
    node = document.createElement(tag)
    if text:
        node.textContent = text
    if class_name:
        node.className = class_name
    return node


def on(id, kind, handler):
    element(id).addEventListener(kind, create_proxy(handler))


def in_background(work):
    """An event handler that keeps a form from submitting and runs `work` without waiting."""
    def handler(event):
        event.preventDefault()
        asyncio.create_task(work())
    return handler


def set_status(text):
    """Say how things stand; a folded model panel (model_panel.fold) shows it unless it says Ready."""
    status = element("status")
    status.textContent = text
    status.classList.toggle("ready", text.startswith("Ready"))


def fixed(x, digits=1):
    """x with a fixed number of decimals (MicroPython's round() can print 64.59999999999999)."""
    return ("%." + str(digits) + "f") % x


def megabytes(n):
    return fixed(n / 1e6) + " MB"


def stored_text(key):
    """The text kept in localStorage under key, or None when absent or storage is blocked."""
    try:
        return window.localStorage.getItem(key)
    except Exception:
        return None


def load_stored(key, default):
    """A JSON value kept in localStorage, or `default` when absent or unreadable."""
    try:
        text = stored_text(key)
        return default if text is None else json.loads(text)
    except Exception:  # an edited value
        return default


def store_text(key, text):
    """Keep text in localStorage (None forgets it); storage may be full or blocked."""
    try:
        if text is None:
            window.localStorage.removeItem(key)
        else:
            window.localStorage.setItem(key, text)
    except Exception:
        pass


def store(key, value):
    """Keep a JSON value in localStorage (None forgets it)."""
    store_text(key, None if value is None else json.dumps(value))


def save_file(name, text, mime):
    """Offer `text` as a download named `name` (a Blob and an <a download>; nothing leaves the page)."""
    url = js.URL.createObjectURL(js.Blob.new(to_js([text]), to_js({"type": mime})))
    link = make("a")
    link.href, link.download = url, name
    document.body.append(link)
    link.click()
    link.remove()
    js.setTimeout(create_proxy(lambda: js.URL.revokeObjectURL(url)), 1000)
