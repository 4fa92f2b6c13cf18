"""GPT-2's byte-level BPE from a repository's vocab.json + merges.txt, encoded by tiktoken.

tiktoken merges by token rank, which equals Hugging Face's merge order for GPT-2 vocabularies
(checked below). In CPython the encoder is the `tiktoken` package; in the browser it is the
same library's WASM build (worker/tokenizer.js), behind this same class.
"""
from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from .safetensors import json_object, shown

GPT2_PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
END_OF_TEXT = "<|endoftext|>"
MAX_VOCAB = 1_000_000  # token ids are below it (GPT-2 has 50257 tokens)
MAX_VOCAB_JSON = 32 * MAX_VOCAB  # bytes; GPT-2's vocab.json has 21 a token


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
    """Parse and cross-check vocab.json and merges.txt, so that tiktoken can take them."""
    vocab = json_object(vocab_json, "vocab.json", TokenizerError, MAX_VOCAB_JSON)
    if END_OF_TEXT not in vocab:
        raise TokenizerError(f"vocab.json has no {END_OF_TEXT} token")
    check_ids(vocab)
    ranks = byte_level_ranks(vocab)
    check_merges(vocab, merges_text(merges_txt))
    return Vocabulary(ranks, {END_OF_TEXT: vocab[END_OF_TEXT]})


def check_ids(vocab: dict[str, object]) -> None:
    """Token ids must be integers from 0 to MAX_VOCAB - 1, no two the same."""
    owners: dict[int, str] = {}
    for token, rank in vocab.items():
        if type(rank) is not int or not 0 <= rank < MAX_VOCAB:
            raise TokenizerError(f"vocab.json gives token {shown(token)} the id {shown(rank)}, "
                                 f"expected an integer from 0 to {MAX_VOCAB - 1}")
        if rank in owners:
            raise TokenizerError(f"vocab.json gives the id {rank} to both {shown(owners[rank])} and {shown(token)}")
        owners[rank] = token


def byte_level_ranks(vocab: dict[str, int]) -> dict[bytes, int]:
    """The mergeable tokens as bytes, with their ids."""
    table = byte_decoding_table()
    ranks = {}
    for token, rank in vocab.items():
        if token == END_OF_TEXT:
            continue
        try:
            ranks[token.translate(table).encode("latin-1")] = rank
        except UnicodeEncodeError:
            raise TokenizerError(f"vocab.json token {shown(token)} is not byte-level BPE") from None
    return ranks


def byte_decoding_table() -> dict[int, int]:
    """str.translate's table from vocab.json's characters to the bytes they stand for, as the
    characters below 256 that encode("latin-1") makes those bytes; a character that stands for
    no byte becomes U+FFFF (which latin-1 cannot encode), or is left as it is if above 255."""
    table = {ord(c): b for b, c in bytes_to_unicode().items()}
    return {n: 0xFFFF for n in range(256)} | table


def merges_text(merges_txt: bytes | str) -> str:
    try:
        return merges_txt.decode() if isinstance(merges_txt, bytes) else merges_txt
    except UnicodeDecodeError:
        raise TokenizerError("merges.txt is not UTF-8 text") from None


def check_merges(vocab: dict[str, int], merges: str) -> None:
    """Each merge must make a known token, with ids rising in merge order (as tiktoken needs)."""
    previous = -1
    for n, line in enumerate(merges.splitlines(), 1):
        if not line or line.startswith("#version"):
            continue
        first, space, second = line.partition(" ")
        rank = vocab.get(first + second) if space and " " not in second else None
        if rank is None:
            raise TokenizerError(f"merges.txt line {n} ({shown(line)}) does not make a token of vocab.json")
        if rank <= previous:
            raise TokenizerError(f"merges.txt line {n}: token ids do not follow merge order")
        previous = rank


def check_spells_any_text(vocabulary: Vocabulary) -> None:
    """Every single byte must be a token: the BPE falls back on them, and tiktoken fails (a
    Rust panic, not an exception) on text it cannot spell with its tokens."""
    if missing := [b for b in range(256) if bytes([b]) not in vocabulary.ranks]:
        raise TokenizerError(f"vocab.json has no token for the byte {missing[0]:#04x} "
                             f"({bytes_to_unicode()[missing[0]]!r}): byte-level BPE needs all 256")


class Tokenizer:
    """encode/decode text; `encode_ordinary` is the BPE backend (tiktoken here or in WASM)."""

    def __init__(self, vocabulary: Vocabulary, encode_ordinary: Callable[[str], list[int]]):
        check_spells_any_text(vocabulary)
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
