"""The cache's pure logic (worker/chunk_store.py): chunk layout, the completion marker,
validation of stored entries and resumption of partial ones."""
from __future__ import annotations

import hashlib

import pytest

from worker import chunk_store as cs
from worker.chunk_store import (CHUNK_SIZE, IntegrityError, absent_manifest, check_download, chunk_count,
                                chunk_lengths, chunk_span, complete_manifest, entry_problem, file_key,
                                full_chunks, is_commit, partial_manifest, resumable_bytes, sha256_from_etag,
                                summarize)

SHA = hashlib.sha256(b"weights").hexdigest()
ETAG = f'"{SHA}"'


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


def test_keys_hold_endpoint_repo_revision_and_file():
    assert file_key("https://hf.co/", "openai-community/gpt2", "abc", "config.json") == \
        ("https://hf.co", "openai-community/gpt2", "abc", "config.json")


def test_only_commit_ids_are_immutable_revisions():
    assert is_commit("607a30d783dfa663caf39e06633721c8d4cfcd7e")
    assert not is_commit("main") and not is_commit("v1.0") and not is_commit("607a30d")


@pytest.mark.parametrize("etag, sha", [
    (ETAG, SHA), (f'W/"{SHA}"', SHA), (SHA, SHA),
    ('"1b9ee5b6a56f3d4ed5a8c1f2c4b9a3c27a4d0f52"', None),  # a git blob sha1: not a content hash
    (None, None), ("", None), ('"not-a-hash"', None),
])
def test_sha256_comes_from_lfs_etags_only(etag, sha):
    assert sha256_from_etag(etag) == sha


def test_a_download_is_checked_for_size_and_sha256():
    check_download("f", 7, 7, SHA, SHA)
    check_download("f", 7, 7, SHA, None)  # no sha256 announced: size only
    with pytest.raises(IntegrityError, match="received 6 bytes but the hub announced 7"):
        check_download("f", 6, 7, SHA, SHA)
    with pytest.raises(IntegrityError, match="sha256 .* corrupted"):
        check_download("f", 7, 7, hashlib.sha256(b"weightz").hexdigest(), SHA)


def test_the_completion_marker_is_set_only_by_complete_manifest():
    started = partial_manifest(2 * CHUNK_SIZE, ETAG)
    assert started["complete"] is False and started["sha256"] == SHA
    done = complete_manifest(started)
    assert done["complete"] is True and done["size"] == 2 * CHUNK_SIZE and "stored" in done
    assert started["complete"] is False  # not changed in place


def test_a_complete_entry_with_all_its_chunks_is_good():
    size = CHUNK_SIZE + 10
    assert entry_problem(complete_manifest(partial_manifest(size, ETAG)), [CHUNK_SIZE, 10]) is None
    assert entry_problem(absent_manifest(), []) is None
    assert entry_problem(complete_manifest(partial_manifest(0, None)), []) is None


@pytest.mark.parametrize("manifest, sizes, problem", [
    (None, [], "partial"),
    ("garbage", [], "partial"),
    (partial_manifest(CHUNK_SIZE + 10, ETAG), [CHUNK_SIZE, 10], "partial"),  # never marked complete
    (complete_manifest(partial_manifest(CHUNK_SIZE + 10, ETAG)), [CHUNK_SIZE, None], "missing or truncated chunks"),
    (complete_manifest(partial_manifest(CHUNK_SIZE + 10, ETAG)), [CHUNK_SIZE, 9], "missing or truncated chunks"),
    (complete_manifest(partial_manifest(CHUNK_SIZE + 10, ETAG)), [CHUNK_SIZE], "missing or truncated chunks"),
    ({**complete_manifest(partial_manifest(10, ETAG)), "chunk_size": 1024}, [10], "unknown layout"),
    ({**complete_manifest(partial_manifest(10, ETAG)), "size": "10"}, [10], "unknown layout"),
])
def test_partial_or_corrupt_entries_are_never_good(manifest, sizes, problem):
    assert entry_problem(manifest, sizes) == problem


def test_a_partial_entry_resumes_from_its_whole_leading_chunks():
    manifest = partial_manifest(3 * CHUNK_SIZE + 5, ETAG)
    assert resumable_bytes(manifest, [CHUNK_SIZE, CHUNK_SIZE, None, None]) == 2 * CHUNK_SIZE
    assert resumable_bytes(manifest, [CHUNK_SIZE, None, CHUNK_SIZE, None]) == CHUNK_SIZE  # stops at a gap
    assert resumable_bytes(manifest, [CHUNK_SIZE - 1, CHUNK_SIZE, None, None]) == 0  # truncated first chunk
    assert resumable_bytes(manifest, [None] * 4) == 0
    assert resumable_bytes(complete_manifest(manifest), [CHUNK_SIZE] * 3 + [5]) == 0  # complete: not a resume
    assert resumable_bytes({**manifest, "chunk_size": 1024}, [CHUNK_SIZE] * 2) == 0
    assert resumable_bytes(None, []) == 0


def test_the_tail_chunk_is_never_resumed_from():
    manifest = partial_manifest(CHUNK_SIZE + 5, ETAG)
    assert resumable_bytes(manifest, [CHUNK_SIZE, 5]) == CHUNK_SIZE


def test_small_chunks_work_the_same(monkeypatch):
    monkeypatch.setattr(cs, "CHUNK_SIZE", 4)
    manifest = cs.partial_manifest(10, ETAG)
    assert cs.chunk_lengths(10) == [4, 4, 2] and cs.resumable_bytes(manifest, [4, 4, None]) == 8
    assert cs.entry_problem(cs.complete_manifest(manifest), [4, 4, 2]) is None


def test_summary_groups_files_by_model_and_counts_complete_bytes():
    a = ("https://hf.co", "org/a", "c1")
    entries = [
        ((*a, "config.json"), complete_manifest(partial_manifest(100, None))),
        ((*a, "model.safetensors"), complete_manifest(partial_manifest(1000, ETAG))),
        ((*a, "pytorch_model.bin"), absent_manifest()),
        (("https://hf.co", "org/b", "c2", "model.safetensors"), partial_manifest(5000, ETAG)),
    ]
    rows = summarize(entries)
    assert [(r["repo"], r["bytes"], r["partial"], r["files"]) for r in rows] == [
        ("org/a", 1100, False, ["config.json", "model.safetensors"]),
        ("org/b", 0, True, ["model.safetensors"]),
    ]
    assert rows[0]["endpoint"] == "https://hf.co" and rows[0]["revision"] == "c1"
