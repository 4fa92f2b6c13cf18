"""The command line: its options are GenerationSettings' fields; generate from a folder and
from a Hub repo id (a local hub server)."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import fields

import pytest

from engine import GenerationSettings
from support import MODELS, ROOT, gpt2_layout_repo
from tools.hub_server import HubServer

GREEDY = ["--temperature", "0", "--repetition-penalty", "1", "--max-new-tokens", "12"]


def run_cli(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "browser_llm", *args], capture_output=True, text=True,
                          cwd=ROOT, env=env, timeout=120)


def expected_text(tiny, prompt: str) -> str:
    return prompt + "".join(s.text for s in tiny.generate(prompt, temperature=0, repetition_penalty=1.0,
                                                            max_new_tokens=12))


def test_generate_from_a_folder_streams_the_engines_text(tiny):
    done = run_cli("generate", "--model", str(MODELS / "tiny"), "--prompt", "Once upon", *GREEDY)
    assert done.returncode == 0, done.stderr
    assert done.stdout.rstrip("\n") == expected_text(tiny, "Once upon")
    assert "tok/s" in done.stderr and "prompt" in done.stderr


def test_help_lists_every_generation_setting_with_its_label_and_default():
    done = run_cli("generate", "--help")
    assert done.returncode == 0, done.stderr
    text = " ".join(done.stdout.split())  # as argparse wraps it
    for setting in fields(GenerationSettings):
        option = "--" + setting.name.replace("_", "-")
        default = "" if setting.default in (None, ()) else f", default {setting.default}"
        assert f"{option} " in text and setting.metadata["label"] + default in text, option


def test_every_setting_option_reaches_the_engine(tiny):
    settings = dict(temperature=0.9, top_k=50, top_p=0.9, repetition_penalty=1.2, max_new_tokens=30, seed=11)
    full = "".join(s.text for s in tiny.generate("Once upon", **settings))
    stops = (full[len(full) // 2:][:4], "not in the text")
    options = [f"--{name.replace('_', '-')}={value}" for name, value in settings.items()]
    done = run_cli("generate", "--model", str(MODELS / "tiny"), "--prompt", "Once upon", *options,
                   *(f"--stop={stop}" for stop in stops))
    assert done.returncode == 0, done.stderr
    expected = "".join(s.text for s in tiny.generate("Once upon", **settings, stop=stops))
    assert len(expected) < len(full) and done.stdout.rstrip("\n") == "Once upon" + expected


@pytest.fixture(scope="module", params=["direct", "real"])
def hub_server(request, tmp_path_factory):
    """The local Hub, answering every file itself ("direct") or as huggingface.co answers
    ("real": weights by a 302 to a CDN origin)."""
    repos = {"test/tiny": {"main": MODELS / "tiny"}, "test/bin": {"main": MODELS / "bin"},
             "test/gpt2-layout": {"main": gpt2_layout_repo(tmp_path_factory.mktemp("gpt2"))}}
    with HubServer(repos, real=request.param == "real", page_size=3) as server:
        yield server


@pytest.fixture
def hub(hub_server):
    hub_server.clear_faults()
    hub_server.clear_requests()
    return hub_server


def hub_generate(hub, cache, model="test/tiny"):
    return run_cli("generate", "--model", model, "--endpoint", hub.url, "--cache-dir", str(cache),
                   "--prompt", "Once upon", *GREEDY)


def bodies(hub, name="model.safetensors"):
    """The requests that carried (or were to carry) a file's bytes: not the real mode's 302s."""
    return [r for r in hub.requests if r.file == name and r.method == "GET" and r.status != 302]


def test_generate_downloads_a_hub_repo_once(tiny, hub, tmp_path):
    first = hub_generate(hub, tmp_path)
    assert first.returncode == 0, first.stderr
    assert first.stdout.rstrip("\n") == expected_text(tiny, "Once upon")
    fetched = {r.file for r in hub.requests if r.status == 200 and r.file and not r.file.startswith("api:")}
    assert fetched == {"config.json", "vocab.json", "merges.txt", "model.safetensors"}
    hub.clear_requests()
    again = hub_generate(hub, tmp_path)
    assert again.returncode == 0 and again.stdout == first.stdout
    assert [r.file for r in hub.requests] == ["api:revision"]  # the branch is looked up; every file is cached


def test_a_repo_laid_out_as_openai_gpt2_fetches_only_what_it_needs(tiny, hub, tmp_path):
    done = hub_generate(hub, tmp_path, "test/gpt2-layout")
    assert done.returncode == 0, done.stderr
    assert done.stdout.rstrip("\n") == expected_text(tiny, "Once upon")  # the same weights as tiny
    fetched = {r.file for r in hub.requests if r.file and not r.file.startswith("api:")}
    assert fetched == {"config.json", "vocab.json", "merges.txt", "model.safetensors"}


def test_an_older_repo_with_only_pytorch_model_bin_loads(hub, tmp_path):
    done = hub_generate(hub, tmp_path, "test/bin")
    assert done.returncode == 0, done.stderr
    assert [r.file for r in bodies(hub, "pytorch_model.bin")] == ["pytorch_model.bin"]


def test_a_flipped_byte_is_refused_and_nothing_is_kept(hub, tmp_path):
    hub.set_fault("test/tiny", "model.safetensors", flip=1000, times=1)
    done = hub_generate(hub, tmp_path)
    assert done.returncode == 1 and "sha256" in done.stderr and "corrupted" in done.stderr, done.stderr
    assert not list(tmp_path.rglob("model.safetensors*"))
    assert hub_generate(hub, tmp_path).returncode == 0


def test_a_small_file_is_checked_too(hub, tmp_path):
    hub.set_fault("test/tiny", "config.json", flip=10, times=1)
    done = hub_generate(hub, tmp_path)
    assert done.returncode == 1 and "config.json" in done.stderr and "git blob sha1" in done.stderr, done.stderr


def test_a_cut_download_resumes_from_the_bytes_received(hub, tmp_path):
    hub.set_fault("test/tiny", "model.safetensors", cut_after=200_000, delay=0.01, times=1)
    done = hub_generate(hub, tmp_path)
    assert done.returncode == 0, done.stderr
    first, second = bodies(hub)
    # from what arrived: all the hub sent, or less when the cut connection dropped its last piece
    resumed_from = int(second.range.removeprefix("bytes=").removesuffix("-"))
    assert first.range is None and 0 < resumed_from <= first.bytes_sent and second.status == 206


def test_an_html_page_instead_of_the_file_is_refused(hub, tmp_path):
    hub.set_fault("test/tiny", "model.safetensors", html=True)
    done = hub_generate(hub, tmp_path)
    assert done.returncode == 1 and "model.safetensors" in done.stderr, done.stderr
    assert not list(tmp_path.rglob("model.safetensors"))


def test_an_index_naming_a_shard_outside_the_folder_writes_nothing_there(hub, tmp_path):
    folder = shutil.copytree(MODELS / "sharded", tmp_path / "repo")
    index = json.loads((folder / "model.safetensors.index.json").read_text())
    index["weight_map"] = {name: "../../../escape.safetensors" for name in index["weight_map"]}
    (folder / "model.safetensors.index.json").write_text(json.dumps(index))
    hub.add_repo("test/escape", folder)
    done = hub_generate(hub, tmp_path / "cache", "test/escape")
    assert done.returncode == 1 and "outside the model's folder" in done.stderr, done.stderr
    assert not list(tmp_path.rglob("escape.safetensors"))


def test_unknown_repo_is_a_clear_error(hub, tmp_path):
    done = run_cli("generate", "--model", "nobody/nothing", "--endpoint", hub.url, "--cache-dir", str(tmp_path),
                   "--prompt", "x")
    assert done.returncode == 1
    assert "nobody/nothing" in done.stderr and "401" in done.stderr


def test_chat_answers_each_turn(tmp_path):
    done = subprocess.run([sys.executable, "-m", "browser_llm", "chat", "--model", str(MODELS / "tiny"), *GREEDY],
                          input="Hello there\nAnd again\n", capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("gpt2> ") == 2
