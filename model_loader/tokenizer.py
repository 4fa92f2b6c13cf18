"""GPT-2's byte-level BPE from a repository's vocab.json + merges.txt, encoded by tiktoken.

tiktoken merges by token rank, which equals Hugging Face's merge order for GPT-2 vocabularies
(checked below). In CPython the encoder is the `tiktoken` package; in the browser it is the
same library's WASM build (worker/tokenizer.js), behind this same class.
"""
from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass

GPT2_PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
END_OF_TEXT = "<|endoftext|>"


class TokenizerError(ValueError):
    """vocab.json / merges.txt are missing pieces or do not fit together."""


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's reversible map from bytes to printable characters, used in vocab.json."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    chars = {b: chr(b) for b in printable}
    for n, b in enumerate(b for b in range(256) if b not in chars):
        chars[b] = chr(256 + n)
    return chars


@dataclass(frozen=True)
class Vocabulary:
    ranks: dict[bytes, int]     # mergeable tokens: their bytes and ids
    specials: dict[str, int]    # e.g. {"<|endoftext|>": 50256}


def read_vocabulary(vocab_json: bytes | str, merges_txt: bytes | str) -> Vocabulary:
    """Parse and cross-check vocab.json and merges.txt."""
    try:
        vocab = json.loads(vocab_json)
    except ValueError as e:
        raise TokenizerError(f"vocab.json is not valid JSON: {e}") from None
    if not isinstance(vocab, dict) or END_OF_TEXT not in vocab:
        raise TokenizerError(f"vocab.json has no {END_OF_TEXT} token")
    decoder = {c: b for b, c in bytes_to_unicode().items()}
    ranks = {}
    for token, rank in vocab.items():
        if token == END_OF_TEXT:
            continue
        try:
            ranks[bytes(decoder[c] for c in token)] = rank
        except KeyError:
            raise TokenizerError(f"vocab.json token {token!r} is not byte-level BPE") from None
    check_merges(vocab, merges_txt.decode() if isinstance(merges_txt, bytes) else merges_txt)
    return Vocabulary(ranks, {END_OF_TEXT: vocab[END_OF_TEXT]})


def check_merges(vocab: dict[str, int], merges: str) -> None:
    """Each merge must make a known token, with ids rising in merge order (as tiktoken needs)."""
    previous = -1
    for n, line in enumerate(merges.splitlines(), 1):
        if not line or line.startswith("#version"):
            continue
        parts = line.split(" ")
        merged = "".join(parts)
        if len(parts) != 2 or merged not in vocab:
            raise TokenizerError(f"merges.txt line {n} ({line!r}) does not make a token of vocab.json")
        if vocab[merged] <= previous:
            raise TokenizerError(f"merges.txt line {n}: token ids do not follow merge order")
        previous = vocab[merged]


class Tokenizer:
    """encode/decode text; `encode_ordinary` is the BPE backend (tiktoken here or in WASM)."""

    def __init__(self, vocabulary: Vocabulary, encode_ordinary: Callable[[str], list[int]]):
        self.encode_ordinary = encode_ordinary
        self.specials = vocabulary.specials
        self.eot_id = vocabulary.specials[END_OF_TEXT]
        self.id_to_bytes = {rank: token for token, rank in vocabulary.ranks.items()}
        self.id_to_bytes.update((rank, s.encode()) for s, rank in self.specials.items())
        self.special_pattern = re.compile("(" + "|".join(map(re.escape, self.specials)) + ")")

    @property
    def n_vocab(self) -> int:
        return max(self.id_to_bytes) + 1

    def encode(self, text: str, allow_special: bool = False) -> list[int]:
        """Token ids of text. With allow_special, a literal "<|endoftext|>" becomes its token;
        without, it is ordinary text (so user text cannot inject control tokens)."""
        if not allow_special:
            return list(self.encode_ordinary(text))
        ids: list[int] = []
        for n, piece in enumerate(self.special_pattern.split(text)):
            ids += [self.specials[piece]] if n % 2 else list(self.encode_ordinary(piece)) if piece else []
        return ids

    def token_bytes(self, token_id: int) -> bytes:
        return self.id_to_bytes[token_id]

    def decode_bytes(self, ids: list[int]) -> bytes:
        return b"".join(self.id_to_bytes[int(i)] for i in ids)

    def decode(self, ids: list[int]) -> str:
        return self.decode_bytes(ids).decode("utf-8", errors="replace")


def tiktoken_tokenizer(vocabulary: Vocabulary) -> Tokenizer:
    """The CPython tokenizer, backed by the tiktoken package."""
    import tiktoken

    encoding = tiktoken.Encoding(name="gpt2-repo", pat_str=GPT2_PATTERN,
                                 mergeable_ranks=vocabulary.ranks, special_tokens=vocabulary.specials)
    return Tokenizer(vocabulary, encoding.encode_ordinary)
