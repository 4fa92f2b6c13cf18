"""The page's static configuration: the worker gets every Python file it imports."""
from __future__ import annotations

import tomllib

from support import ROOT


def test_worker_config_lists_every_python_file_it_needs():
    config = tomllib.loads((ROOT / "pyscript.toml").read_text())
    listed = {source for source in config["files"] if not source.startswith("{")}
    needed = {str(p.relative_to(ROOT)) for d in ("engine", "model_loader", "worker") for p in (ROOT / d).glob("*.py")}
    assert listed == needed
    assert all(config["files"][source] == source for source in listed)
    assert config["packages"] == ["numpy"]
    assert (ROOT / "worker" / "tokenizer.js").exists() and "./worker/tokenizer.js" in config["js_modules"]["worker"]
