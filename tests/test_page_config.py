"""The page's static configuration: the worker and the main thread get every Python file they import."""
from __future__ import annotations

import ast
import json
import tomllib

from support import ROOT


def test_worker_config_lists_every_python_file_it_needs():
    config = tomllib.loads((ROOT / "pyscript.toml").read_text())
    listed = {source for source in config["files"] if not source.startswith("{")}
    needed = {str(p.relative_to(ROOT)) for d in ("engine", "model_loader", "worker") for p in (ROOT / d).rglob("*.py")}
    assert listed == needed
    assert all(config["files"][source] == source for source in listed)
    assert config["packages"] == ["numpy"]
    assert (ROOT / "worker" / "tokenizer.js").exists() and "./worker/tokenizer.js" in config["js_modules"]["worker"]


def imported_app_modules(name: str, found: set[str]) -> set[str]:
    """The modules of app/ that app/{name}.py imports, directly or through one another."""
    tree = ast.parse((ROOT / "app" / f"{name}.py").read_text())
    for node in ast.walk(tree):
        names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
            [node.module] if isinstance(node, ast.ImportFrom) and node.module else []
        for module in names:
            if (ROOT / "app" / f"{module}.py").exists() and module not in found:
                found.add(module)
                imported_app_modules(module, found)
    return found


def test_main_thread_config_lists_every_module_main_py_imports():
    files = json.loads((ROOT / "app" / "main.json").read_text())["files"]
    needed = imported_app_modules("main", set())
    assert {"dom", "conversation", "settings_panel", "model_panel", "chat_panel"} <= needed
    assert files == {f"app/{module}.py": f"./{module}.py" for module in needed}
    assert "main.json" in (ROOT / "client" / "runtime.js").read_text()  # the config the page gives MicroPython
