import js
from polyscript import xworker

held = {}

def attach(ctrl, data):
    held.update(ctrl=ctrl, data=data)
    return f"{ctrl.constructor.name} {js.Object.prototype.toString.call(ctrl.buffer)} {data.length}"

def bump():
    js.Atomics.add(held["ctrl"], 0, 1)
    held["data"][0] = held["data"][0] + 1.5
    return 1

__export__ = ["attach", "bump"]
