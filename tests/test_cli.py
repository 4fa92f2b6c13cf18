"""The command line: generate from a folder and from a Hub repo id (a local hub server)."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from support import MODELS, ROOT
from tools.hub_server import HubServer

GREEDY = ["--temperature", "0", "--repetition-penalty", "1", "--max-new-tokens", "12"]


def run_cli(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "app", *args], capture_output=True, text=True,
                          cwd=ROOT, env=env, timeout=120)


def expected_text(tiny, prompt: str) -> str:
    return prompt + "".join(s.text for s in tiny.generate(prompt, temperature=0, repetition_penalty=1.0,
                                                            max_new_tokens=12))


def test_generate_from_a_folder_streams_the_engines_text(tiny):
    done = run_cli("generate", "--model", str(MODELS / "tiny"), "--prompt", "Once upon", *GREEDY)
    assert done.returncode == 0, done.stderr
    assert done.stdout.rstrip("\n") == expected_text(tiny, "Once upon")
    assert "tok/s" in done.stderr and "prompt" in done.stderr


@pytest.fixture
def hub():
    with HubServer({"test/tiny": {"main": MODELS / "tiny"}}) as server:
        yield server


def test_generate_downloads_a_hub_repo_once(tiny, hub, tmp_path):
    args = ["generate", "--model", "test/tiny", "--endpoint", hub.url, "--cache-dir", str(tmp_path),
            "--prompt", "Once upon", *GREEDY]
    first = run_cli(*args)
    assert first.returncode == 0, first.stderr
    assert first.stdout.rstrip("\n") == expected_text(tiny, "Once upon")
    fetched = {r.file for r in hub.requests if r.status == 200}
    assert fetched == {"config.json", "vocab.json", "merges.txt", "model.safetensors"}
    hub.clear_requests()
    again = run_cli(*args)
    assert again.returncode == 0 and again.stdout == first.stdout
    assert hub.requests == []  # served from the local cache


def test_unknown_repo_is_a_clear_error(hub, tmp_path):
    done = run_cli("generate", "--model", "nobody/nothing", "--endpoint", hub.url, "--cache-dir", str(tmp_path),
                   "--prompt", "x")
    assert done.returncode == 1
    assert "nobody/nothing" in done.stderr and "401" in done.stderr


def test_chat_answers_each_turn(tmp_path):
    done = subprocess.run([sys.executable, "-m", "app", "chat", "--model", str(MODELS / "tiny"), *GREEDY],
                          input="Hello there\nAnd again\n", capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("gpt2> ") == 2
