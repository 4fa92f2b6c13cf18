"""The tokenizer built from vocab.json + merges.txt against tiktoken's own GPT-2 encoding."""
from __future__ import annotations

import json

import pytest

from engine.generation import TextStream
from model_loader.tokenizer import TokenizerError, read_vocabulary
from support import CORPUS



@pytest.mark.parametrize("text", CORPUS)
def test_encode_equals_tiktoken(gpt2_tokenizer, tiktoken_gpt2, text):
    assert gpt2_tokenizer.encode(text) == tiktoken_gpt2.encode_ordinary(text)
    assert gpt2_tokenizer.encode(text, allow_special=True) == tiktoken_gpt2.encode(text, allowed_special="all")
    assert gpt2_tokenizer.decode(gpt2_tokenizer.encode(text)) == text


def test_known_ids(gpt2_tokenizer):
    assert gpt2_tokenizer.encode("Hello world") == [15496, 995]  # GPT-2's published ids
    assert gpt2_tokenizer.eot_id == 50256


def is_utf8(b: bytes) -> bool:
    try:
        b.decode()
        return True
    except UnicodeDecodeError:
        return False


@pytest.mark.parametrize("text", ["😀🎉👩‍👩‍👧 ok", "中文字符和日本語のテキスト", "𝔘𝔫𝔦𝔠𝔬𝔡𝔢 ∮ naïve"])
def test_streaming_never_breaks_a_character(gpt2_tokenizer, text):
    ids = gpt2_tokenizer.encode(text)
    assert any(not is_utf8(gpt2_tokenizer.token_bytes(i)) for i in ids)  # the case under test
    stream = TextStream(gpt2_tokenizer)
    pieces = [stream.feed(i)[0] for i in ids]
    assert "".join(pieces) + stream.flush() == text
    assert not any("\ufffd" in p for p in pieces)
    assert any(p == "" for p in pieces)  # some tokens were incomplete characters and were held back


def test_stop_strings_cut_and_hold_back(gpt2_tokenizer):
    stream = TextStream(gpt2_tokenizer, stops=("\nUser:",))
    shown, stopped = [], False
    for i in gpt2_tokenizer.encode("Sure, here it is.\nUs and more\nUser: next"):
        text, stopped = stream.feed(i)
        shown.append(text)
        if stopped:
            break
    assert stopped and "".join(shown) == "Sure, here it is.\nUs and more"


def test_merges_that_do_not_fit_the_vocabulary_are_refused():
    vocab = '{"a": 0, "b": 1, "ab": 2, "<|endoftext|>": 3}'
    read_vocabulary(vocab, "#version: 0.2\na b\n")
    with pytest.raises(TokenizerError, match="line 2"):
        read_vocabulary(vocab, "#version: 0.2\nb a\n")
    with pytest.raises(TokenizerError, match="endoftext"):
        read_vocabulary('{"a": 0}', "")


@pytest.mark.parametrize("merge", ["a", "a b c", "a  b"])
def test_a_merge_line_of_other_than_two_tokens_is_refused(merge):
    vocab = '{"a": 0, "b": 1, "ab": 2, "abc": 3, "<|endoftext|>": 4}'
    with pytest.raises(TokenizerError, match="line 1"):
        read_vocabulary(vocab, merge + "\n")


def test_byte_level_tokens_spell_their_bytes(gpt2_tokenizer, tiktoken_gpt2):
    """GPT-2's vocab.json characters stand for bytes (Ġ for a space, Ċ for a newline, ¡ for
    itself): the tokenizer's bytes of every token are tiktoken's own."""
    assert all(gpt2_tokenizer.token_bytes(i) == tiktoken_gpt2.decode_single_token_bytes(i) for i in range(50256))


@pytest.mark.parametrize("char", ["\x00", " ", "\x7f", "\xad", "€", "\uffff", chr(256 + 68)])
def test_a_character_that_stands_for_no_byte_is_refused(char):
    """vocab.json spells bytes with printable characters only: a control character, a space, a
    soft hyphen or a character past GPT-2's map stands for no byte."""
    vocab = json.dumps({"a": 0, "x" + char: 1, "<|endoftext|>": 2})
    with pytest.raises(TokenizerError, match="is not byte-level BPE"):
        read_vocabulary(vocab, "")
