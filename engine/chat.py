"""Conversations as prompts. Chat-tuned GPT-2s (DialoGPT) join turns with <|endoftext|>;
plain GPT-2s continue a transcript of "User:" / "Assistant:" lines."""
from __future__ import annotations

from collections.abc import Sequence

from .generation import TokenizerLike

CHAT_STYLES = ("transcript", "eot")


def chat_prompt(turns: list[tuple[str, str]], tokenizer: TokenizerLike, style: str,
                cached: Sequence[int] = ()) -> tuple[list[int], tuple[str, ...]]:
    """Token ids that ask for the next assistant turn, and the stop strings that end it.
    `turns` are (role, text) pairs, role "user" or "assistant". `cached` is what a session's KV
    cache holds (the last reply's conversation): the prompt keeps its ids where they spell the
    same text, so that the model's own replies are not split into other tokens and only the new
    turn runs again."""
    if style == "eot":
        pieces = [piece for _, text in turns for piece in (text, tokenizer.eot_id)]
        return encode_reusing(pieces, tokenizer, cached), ()
    if style == "transcript":
        lines = "".join(transcript_line(role, text) for role, text in turns)
        return encode_reusing([lines + "Assistant:"], tokenizer, cached), ("\nUser:", "\nAssistant:")
    raise ValueError(f"unknown chat style {style!r}; expected one of {CHAT_STYLES}")


def transcript_line(role: str, text: str) -> str:
    """A turn of the transcript: the user's text trimmed, the assistant's as the model wrote it
    after "Assistant:" (most often from a space on), so that its tokens can be the model's own."""
    if role == "assistant":
        return f"Assistant:{text.rstrip()}\n"
    if role == "user":
        return f"User: {text.strip()}\n"
    raise ValueError(f"unknown role {role!r}; expected user or assistant")


def encode_reusing(pieces: list[str | int], tokenizer: TokenizerLike, cached: Sequence[int]) -> list[int]:
    """The ids of `pieces` (texts and token ids, in order): `cached`'s own ids for as long as
    they spell the pieces, then the rest encoded."""
    ids: list[int] = []
    reusing = True
    for piece in pieces:
        if isinstance(piece, int):
            reusing = reusing and len(ids) < len(cached) and cached[len(ids)] == piece
            ids.append(piece)
            continue
        data = piece.encode()
        kept, spelled = cached_spelling(data, tokenizer, cached[len(ids):]) if reusing else ([], 0)
        ids += kept
        if spelled < len(data):
            reusing = False
            ids += tokenizer.encode(data[spelled:].decode())
    return ids


def cached_spelling(data: bytes, tokenizer: TokenizerLike, cached: Sequence[int]) -> tuple[list[int], int]:
    """The longest run of `cached`, from its start, whose bytes begin `data` and end on a whole
    UTF-8 character; and how many bytes of `data` it spells."""
    ends = [0]  # bytes spelled after each token
    for token in cached:
        spelling = tokenizer.token_bytes(token)
        if not data.startswith(spelling, ends[-1]):
            break
        ends.append(ends[-1] + len(spelling))
    while ends[-1] < len(data) and data[ends[-1]] & 0xC0 == 0x80:  # in the middle of a character
        ends.pop()
    return list(cached[:len(ends) - 1]), ends[-1]
