"""Shared test fixtures: the committed random checkpoints and their transformers references."""
from __future__ import annotations

import json

import pytest

from support import FIXTURES, GPT2_JSON, fixture_model


# The browser tests in two groups of about equal time, each run in order by one pytest-xdist
# worker with its own browser and shared pages; the CPython tests fill in beside them.
SECOND_BROWSER = {"test_experience.py", "test_examples.py", "test_offline.py", "test_accessibility.py",
                  "test_page.py", "test_kernels_page.py", "test_privacy.py"}


def pytest_xdist_make_scheduler(config, log):
    """pytest-xdist (pyproject.toml: -n 2) gives each worker one group of browser tests (a page
    boot is mostly one core's work), and the CPython tests, module by module, to whichever is free."""
    from xdist.scheduler import LoadScopeScheduling

    class BrowserTestsTogether(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            if not nodeid.startswith("tests/e2e/"):
                return super()._split_scope(nodeid)
            return "tests/e2e (2)" if nodeid.split("/")[2].split("::")[0] in SECOND_BROWSER else "tests/e2e (1)"

    return BrowserTestsTogether(config, log)


@pytest.fixture(scope="session")
def tiny():
    return fixture_model("tiny")


@pytest.fixture(scope="session")
def gpt2_tokenizer():
    """Our tokenizer built from GPT-2's full vocab.json + merges.txt."""
    from model_loader.tokenizer import read_vocabulary, tiktoken_tokenizer
    folder = FIXTURES / "gpt2-tokenizer"
    return tiktoken_tokenizer(read_vocabulary((folder / "vocab.json").read_bytes(),
                                              (folder / "merges.txt").read_bytes()))


@pytest.fixture(scope="session")
def tiktoken_gpt2():
    """tiktoken's own GPT-2 encoding, from npm tiktoken's ranks (tiktoken.get_encoding would
    download them; tools/vendor_runtime.py puts the npm copy in vendor/)."""
    import base64
    import tiktoken
    if not GPT2_JSON.exists():
        pytest.fail(f"{GPT2_JSON} is missing: run python tools/vendor_runtime.py")
    spec = json.loads(GPT2_JSON.read_text())
    ranks = {}
    for line in spec["bpe_ranks"].splitlines():
        _, offset, *tokens = line.split(" ")
        ranks.update((base64.b64decode(t), int(offset) + i) for i, t in enumerate(tokens))
    return tiktoken.Encoding("gpt2", pat_str=spec["pat_str"], mergeable_ranks=ranks,
                             special_tokens=spec["special_tokens"])
