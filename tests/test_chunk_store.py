"""The cache's pure logic (worker/chunk_store.py): chunk layout, the completion marker,
validation of stored entries against the Hub's listing and resumption of partial ones."""
from __future__ import annotations

import hashlib

import pytest

from model_loader.hub import RemoteFile
from worker import chunk_store as cs
from worker.chunk_store import (CHUNK_SIZE, chunk_count, chunk_lengths, chunk_span, complete_manifest, entry_problem,
                                file_key, full_chunks, partial_manifest, resumable_bytes, summarize)

SHA = hashlib.sha256(b"weights").hexdigest()


def weights(size: int, sha256: str = SHA) -> RemoteFile:
    return RemoteFile("model.safetensors", size, sha256=sha256)


def complete(remote: RemoteFile) -> dict:
    return complete_manifest(remote, ["0" * 64] * chunk_count(remote.size))


def test_chunks_stay_well_below_the_indexeddb_value_limit():
    assert 16 * 2**20 <= CHUNK_SIZE <= 64 * 2**20 < 127 * 2**20


@pytest.mark.parametrize("size, lengths", [
    (0, []), (1, [1]), (CHUNK_SIZE, [CHUNK_SIZE]), (CHUNK_SIZE + 1, [CHUNK_SIZE, 1]),
    (3 * CHUNK_SIZE - 5, [CHUNK_SIZE, CHUNK_SIZE, CHUNK_SIZE - 5]),
])
def test_chunk_layout_covers_the_file_exactly(size, lengths):
    assert chunk_count(size) == len(lengths) and chunk_lengths(size) == lengths
    spans = [chunk_span(i, size) for i in range(chunk_count(size))]
    assert [end - start for start, end in spans] == lengths
    assert all(a[1] == b[0] for a, b in zip(spans, spans[1:])) and (not spans or spans[-1][1] == size)


def test_gpt2_small_weights_fit_in_fifteen_chunks():
    assert chunk_count(497_773_752) == 15 and max(chunk_lengths(497_773_752)) < 127 * 2**20


def test_full_chunks_counts_only_complete_ones():
    assert [full_chunks(n) for n in (0, CHUNK_SIZE - 1, CHUNK_SIZE, 2 * CHUNK_SIZE + 3)] == [0, 0, 1, 2]


def test_keys_hold_endpoint_repo_commit_and_file():
    assert file_key("https://hf.co/", "openai-community/gpt2", "abc", "config.json") == \
        ("https://hf.co", "openai-community/gpt2", "abc", "config.json")


def test_the_completion_marker_is_set_only_by_complete_manifest_with_each_chunks_digest():
    remote = weights(2 * CHUNK_SIZE)
    started = partial_manifest(remote)
    assert started["complete"] is False and started["digest"] == SHA and "chunks" not in started
    done = complete_manifest(remote, ["a" * 64, "b" * 64])
    assert done["complete"] is True and done["size"] == 2 * CHUNK_SIZE and done["chunks"] == ["a" * 64, "b" * 64]
    assert started["complete"] is False  # not changed in place


def test_a_complete_entry_of_the_listed_file_with_all_its_chunks_is_good():
    remote = weights(CHUNK_SIZE + 10)
    assert entry_problem(complete(remote), remote, [CHUNK_SIZE, 10]) is None
    empty = RemoteFile("empty.txt", 0, blob_sha1=hashlib.sha1(b"blob 0\0").hexdigest())
    assert entry_problem(complete(empty), empty, []) is None


REMOTE = weights(CHUNK_SIZE + 10)


@pytest.mark.parametrize("manifest, sizes, problem", [
    (None, [], "partial"),
    ("garbage", [], "partial"),
    (partial_manifest(REMOTE), [CHUNK_SIZE, 10], "partial"),  # never marked complete
    (complete(REMOTE), [CHUNK_SIZE, None], "missing or truncated chunks"),
    (complete(REMOTE), [CHUNK_SIZE, 9], "missing or truncated chunks"),
    (complete(REMOTE), [CHUNK_SIZE], "missing or truncated chunks"),
    ({**complete(REMOTE), "chunk_size": 1024}, [CHUNK_SIZE, 10], "not the file the Hub lists"),
    (complete(weights(CHUNK_SIZE + 11)), [CHUNK_SIZE, 10], "not the file the Hub lists"),  # the size changed
    (complete(weights(REMOTE.size, "1" * 64)), [CHUNK_SIZE, 10], "not the file the Hub lists"),  # the hash changed
    ({**complete(REMOTE), "chunks": ["0" * 64]}, [CHUNK_SIZE, 10], "no chunk digests"),
    ({k: v for k, v in complete(REMOTE).items() if k != "chunks"}, [CHUNK_SIZE, 10], "no chunk digests"),
])
def test_partial_corrupt_or_stale_entries_are_never_good(manifest, sizes, problem):
    assert entry_problem(manifest, REMOTE, sizes) == problem


def test_a_partial_entry_resumes_from_its_whole_leading_chunks():
    remote = weights(3 * CHUNK_SIZE + 5)
    manifest = partial_manifest(remote)
    assert resumable_bytes(manifest, remote, [CHUNK_SIZE, CHUNK_SIZE, None, None]) == 2 * CHUNK_SIZE
    assert resumable_bytes(manifest, remote, [CHUNK_SIZE, None, CHUNK_SIZE, None]) == CHUNK_SIZE  # stops at a gap
    assert resumable_bytes(manifest, remote, [None] * 4) == 0
    assert resumable_bytes(complete(remote), remote, [CHUNK_SIZE] * 3 + [5]) == 0  # complete: not a resume
    assert resumable_bytes({**manifest, "chunk_size": 1024}, remote, [CHUNK_SIZE] * 2) == 0
    assert resumable_bytes(None, remote, []) == 0


def test_a_partial_entry_of_another_version_of_the_file_is_not_resumed():
    remote = weights(3 * CHUNK_SIZE + 5)
    manifest = partial_manifest(remote)
    assert resumable_bytes(manifest, weights(remote.size, "2" * 64), [CHUNK_SIZE] * 2) == 0
    assert resumable_bytes(manifest, weights(remote.size + 1), [CHUNK_SIZE] * 2) == 0


def test_the_tail_chunk_is_never_resumed_from():
    remote = weights(CHUNK_SIZE + 5)
    assert resumable_bytes(partial_manifest(remote), remote, [CHUNK_SIZE, 5]) == CHUNK_SIZE


def test_small_chunks_work_the_same(monkeypatch):
    monkeypatch.setattr(cs, "CHUNK_SIZE", 4)
    remote = weights(10)
    assert cs.chunk_lengths(10) == [4, 4, 2] and cs.resumable_bytes(cs.partial_manifest(remote), remote, [4, 4, None]) == 8
    assert cs.entry_problem(cs.complete_manifest(remote, ["0" * 64] * 3), remote, [4, 4, 2]) is None


def test_summary_groups_files_by_model_and_counts_complete_bytes():
    a = ("https://hf.co", "org/a", "c1")
    config = RemoteFile("config.json", 100, blob_sha1="3" * 40)
    entries = [
        ((*a, "config.json"), complete(config)),
        ((*a, "model.safetensors"), complete(weights(1000))),
        (("https://hf.co", "org/b", "c2", "model.safetensors"), partial_manifest(weights(5000))),
    ]
    rows = summarize(entries)
    assert [(r["repo"], r["bytes"], r["partial"], r["files"]) for r in rows] == [
        ("org/a", 1100, False, ["config.json", "model.safetensors"]),
        ("org/b", 0, True, ["model.safetensors"]),
    ]
    assert rows[0]["endpoint"] == "https://hf.co" and rows[0]["revision"] == "c1"
