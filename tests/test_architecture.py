"""docs/ARCHITECTURE.md is true: every file and folder it names exists, and every folder of
Python or JavaScript the app is made of is on its map."""
from __future__ import annotations

import re

from support import ROOT

DOC = (ROOT / "docs" / "ARCHITECTURE.md").read_text()
NAMED = set(re.findall(r"`([\w./-]+\.(?:py|js|json|toml|html|md)|[\w-]+/)`", DOC))


def resolve(name: str):
    """A name as the page writes it: a path from the root, or a file of the folder the
    paragraph is about (`loading.py` in the worker's)."""
    if (ROOT / name).exists():
        return ROOT / name
    return next((path for path in ROOT.glob(f"*/{name}")), None) or next(ROOT.glob(f"*/*/{name}"), None)


def test_every_name_in_the_architecture_page_exists():
    assert len(NAMED) > 30
    assert [name for name in sorted(NAMED) if resolve(name) is None] == []


def test_every_source_folder_is_on_the_map():
    folders = {path.parent.relative_to(ROOT).parts[0] for pattern in ("*/*.py", "*/*.js") for path in ROOT.glob(pattern)}
    folders -= {"tests", "tools", "bench", "examples", "vendor", "node_modules", "docs"}
    assert folders and all(f"`{folder}/`" in DOC for folder in folders), folders
