"""The Hub's rules (model_loader/hub.py), shared by the browser worker and the command line:
the API's answers as huggingface.co documents them, refusals, resumes and file checks, with git
itself as the reference for a small file's blob id."""
from __future__ import annotations

import hashlib
import json
import subprocess

import pytest

from model_loader.hub import (HubError, IntegrityError, RemoteFile, TransientError, check_repo_id, file_url,
                              is_commit, is_safe_name, is_transient, next_page, parse_commit, parse_tree, refusal,
                              resumed_from, revision_url, tree_url)

SHA256 = "248dfc3911869ec493c76e65bf2fcf7f615828b0254c12b473c2d1b2dc3c7ce9"
# Entries shaped as the API answers for openai-community/gpt2 (GET /api/models/{repo}/tree/main).
TREE = [
    {"type": "file", "oid": "10c66461e4c109db5a2196bff4bb59be30396ed8", "size": 665, "path": "config.json"},
    {"type": "file", "oid": "7c5d3f4b8b76583b422fcb9189ad6c89d5d97a094541ce8932dce3ecabde1421", "size": 548105171,
     "lfs": {"oid": SHA256, "size": 548105171, "pointerSize": 135}, "xetHash": "ab" * 32, "path": "model.safetensors"},
    {"type": "directory", "oid": "c4b6b0ba4c8bd5e0b6bd3d32d5de0b5f2d7b3c1a", "size": 0, "path": "onnx"},
]


def git_blob_sha1(data: bytes) -> str:
    return subprocess.run(["git", "hash-object", "--stdin"], input=data, capture_output=True, check=True).stdout.decode().strip()


def test_a_listing_gives_each_files_size_and_hash_and_leaves_folders_out():
    files = parse_tree(json.dumps(TREE), "x")
    assert files == [RemoteFile("config.json", 665, blob_sha1=TREE[0]["oid"]),
                     RemoteFile("model.safetensors", 548105171, sha256=SHA256)]


def test_a_small_file_is_checked_by_its_git_blob_id_as_git_computes_it():
    data = b'{"model_type": "gpt2"}\n'
    remote = RemoteFile("config.json", len(data), blob_sha1=git_blob_sha1(data))
    hasher = remote.hasher()
    hasher.update(data)
    remote.check(len(data), hasher.hexdigest())
    with pytest.raises(IntegrityError, match="git blob sha1"):
        changed = remote.hasher()
        changed.update(data.replace(b"gpt2", b"gpt3"))
        remote.check(len(data), changed.hexdigest())


def test_a_weight_file_is_checked_by_size_and_sha256():
    data = b"weights" * 1000
    remote = RemoteFile("model.safetensors", len(data), sha256=hashlib.sha256(data).hexdigest())
    hasher = remote.hasher()
    hasher.update(data)
    remote.check(len(data), hasher.hexdigest())
    with pytest.raises(IntegrityError, match="received 6999 bytes but the Hub lists 7000"):
        remote.check(len(data) - 1, hasher.hexdigest())
    with pytest.raises(IntegrityError, match="sha256 .* corrupted"):
        remote.check(len(data), hashlib.sha256(b"other").hexdigest())


@pytest.mark.parametrize("body", [
    "<!doctype html><html>Something went wrong</html>", "", "{", "[" * 200_000 + "]" * 200_000, '{"a": 1}', "null",
])
def test_a_listing_that_is_not_one_is_a_hub_error(body):
    with pytest.raises(HubError, match="^test/tiny: the file listing"):
        parse_tree(body, "test/tiny: the file listing")


@pytest.mark.parametrize("entry", [
    {"type": "file", "path": "model.safetensors", "size": 10, "lfs": {"size": 10}},  # no sha256
    {"type": "file", "path": "model.safetensors", "size": 10, "lfs": {"oid": "xyz", "size": 10}},
    {"type": "file", "path": "model.safetensors", "size": 10, "lfs": "yes"},
    {"type": "file", "path": "config.json", "size": 10},  # no blob id
    {"type": "file", "path": "config.json", "size": True, "oid": "1" * 40},
    {"type": "file", "path": "config.json", "size": -1, "oid": "1" * 40},
    {"type": "file", "path": "config.json", "size": "10", "oid": "1" * 40},
])
def test_an_entry_without_a_usable_size_or_hash_is_refused(entry):
    with pytest.raises(HubError, match="listed without"):
        parse_tree(json.dumps([entry]), "x")


@pytest.mark.parametrize("name", ["../x.safetensors", "/etc/passwd", "a/b.safetensors", "..", ".", "", "a\\b", "x\0y", 7, None])
def test_names_that_could_leave_the_folder_are_never_listed(name):
    assert not is_safe_name(name)
    assert parse_tree(json.dumps([{"type": "file", "path": name, "size": 1, "oid": "1" * 40}]), "x") == []


def test_plain_names_are_safe():
    assert all(is_safe_name(n) for n in ("config.json", "model-00001-of-00003.safetensors", ".gitattributes"))


def test_the_commit_comes_from_the_revision_answer():
    commit = "607a30d783dfa663caf39e06633721c8d4cfcd7e"
    assert parse_commit(json.dumps({"id": "openai-community/gpt2", "sha": commit, "siblings": []}), "x") == commit
    for body in ('{"sha": "main"}', "{}", "[]", "<html>", '{"sha": null}'):
        with pytest.raises(HubError, match="^gpt2@main: "):
            parse_commit(body, "gpt2@main")


def test_pages_follow_the_link_header():
    link = '<https://huggingface.co/api/models/gpt2/tree/main?cursor=abc>; rel="next"'
    assert next_page(link) == "https://huggingface.co/api/models/gpt2/tree/main?cursor=abc"
    assert next_page(None) is None and next_page('<https://x/prev>; rel="prev"') is None


def test_urls_follow_the_hubs_layout():
    assert file_url("https://huggingface.co/", "openai-community/gpt2", "main", "config.json") == \
        "https://huggingface.co/openai-community/gpt2/resolve/main/config.json"
    assert revision_url("https://huggingface.co", "gpt2", "refs/pr/1") == \
        "https://huggingface.co/api/models/gpt2/revision/refs%2Fpr%2F1"
    assert tree_url("https://huggingface.co", "org/m", "a" * 40) == f"https://huggingface.co/api/models/org/m/tree/{'a' * 40}"


@pytest.mark.parametrize("status, code, words", [
    (401, "RepoNotFound", "repository not found (or private; HTTP 401)"),
    (403, "GatedRepo", "gated or private (HTTP 403)"),
    (401, "GatedRepo", "gated or private (HTTP 401)"),
    (404, "RevisionNotFound", "revision not found (HTTP 404)"),
    (404, "EntryNotFound", "not found on the Hub (HTTP 404)"),
    (500, None, "HTTP 500"),
])
def test_refusals_say_what_they_mean(status, code, words):
    assert refusal(status, code, "org/m").startswith("org/m: ") and words in refusal(status, code, "org/m")


def test_only_server_trouble_is_retried():
    assert all(is_transient(s) for s in (500, 502, 503, 504, 408, 429))
    assert not any(is_transient(s) for s in (400, 401, 403, 404, 416))


@pytest.mark.parametrize("status, asked_from, length, starts_at", [
    (200, 0, 100, 0), (200, 40, 100, 0),  # the whole file: start over
    (206, 40, 60, 40), (206, 40, None, 40),  # the rest; Content-Range is never needed
])
def test_a_resumed_download_continues_or_starts_over(status, asked_from, length, starts_at):
    assert resumed_from(status, asked_from, length, 100) == starts_at


@pytest.mark.parametrize("status, asked_from, length", [(206, 40, 59), (206, 0, 100), (204, 40, 0), (304, 40, 0)])
def test_any_other_answer_to_a_resume_starts_over_with_its_status(status, asked_from, length):
    with pytest.raises(TransientError, match=f"HTTP {status}.*starting over"):
        resumed_from(status, asked_from, length, 100)


def test_repo_ids():
    assert check_repo_id("openai-community/gpt2") == "openai-community/gpt2" and check_repo_id("gpt2") == "gpt2"
    for bad in ("../etc", "a/b/c", "/abs", "a/..", "", "a b", "https://x/y"):
        with pytest.raises(HubError):
            check_repo_id(bad)
    assert is_commit("607a30d783dfa663caf39e06633721c8d4cfcd7e") and not is_commit("main")
