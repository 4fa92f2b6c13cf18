"""worker/protocol.py is the one definition of the messages between the page and the workers:
the JavaScript side is generated from it, and the functions both sides name are its own."""
from __future__ import annotations

import ast
import json
import re

import pytest

from support import ROOT
from worker import protocol


def test_the_javascript_side_is_generated_from_the_protocol():
    assert (ROOT / "client" / "protocol.js").read_text() == protocol.javascript(), \
        "run: python3 -m worker.protocol > client/protocol.js"


def test_the_worker_defines_every_protocol_function_and_exports_them():
    tree = ast.parse((ROOT / "worker" / "worker.py").read_text())
    defined = {node.name for node in tree.body if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))}
    imported = {alias.asname or alias.name for node in tree.body if isinstance(node, ast.ImportFrom) for alias in node.names}
    assert set(protocol.FUNCTIONS) <= defined | imported
    assert "__export__ = list(FUNCTIONS)" in ast.unparse(tree)


def called_worker_functions(text: str) -> set[str]:
    """Names called on a model worker's exports in JS (w.sync.x(, #lead.x(, s.shard_x() or in the
    MicroPython UI (state["worker"].x()."""
    patterns = [r"\.sync\.(\w+)\(", r"#lead\.(\w+)\(", r"\bs\.(shard_\w+)\(", r'state\["worker"\]\.(\w+)\(']
    return {name for pattern in patterns for name in re.findall(pattern, text)}


def test_every_function_the_page_calls_is_in_the_protocol():
    sources = [*ROOT.glob("client/*.js"), *ROOT.glob("app/*.js"), *ROOT.glob("app/*.py"), ROOT / "browser-llm.js"]
    called = set().union(*(called_worker_functions(path.read_text()) for path in sources))
    assert {"load", "start", "generate", "shard_exchange", "model_size"} <= called  # the patterns do find calls
    assert called <= set(protocol.FUNCTIONS) | {"terminate", "setWorkers"}


def test_events_carry_their_kind_and_replies_their_fields():
    assert json.loads(protocol.encode(protocol.Status("Building…"))) == {"kind": "status", "text": "Building…"}
    reply = protocol.StartReply(prompt_tokens=3, n_ctx=64)
    assert json.loads(protocol.encode(reply)) == {"prompt_tokens": 3, "n_ctx": 64, "reused": 0, "feed": None}


def test_a_request_with_an_unknown_field_is_refused():
    assert protocol.read(protocol.StartRequest, '{"prompt": "Hi"}').prompt == "Hi"
    with pytest.raises(ValueError, match="unexpected fields"):
        protocol.read(protocol.StartRequest, '{"prompt": "Hi", "temperature": 2}')
