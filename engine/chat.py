"""Conversations as prompts. Chat-tuned GPT-2s (DialoGPT) join turns with <|endoftext|>;
plain GPT-2s continue a transcript of "User:" / "Assistant:" lines."""
from __future__ import annotations

from .generation import TokenizerLike

CHAT_STYLES = ("transcript", "eot")
TRANSCRIPT_ROLES = {"user": "User", "assistant": "Assistant"}


def chat_prompt(turns: list[tuple[str, str]], tokenizer: TokenizerLike, style: str) -> tuple[list[int], tuple[str, ...]]:
    """Token ids that ask for the next assistant turn, and the stop strings that end it.
    `turns` are (role, text) pairs, role "user" or "assistant"."""
    if style == "eot":
        ids: list[int] = []
        for _, text in turns:
            ids += tokenizer.encode(text) + [tokenizer.eot_id]
        return ids, ()
    if style == "transcript":
        lines = "".join(f"{TRANSCRIPT_ROLES[role]}: {text.strip()}\n" for role, text in turns)
        return tokenizer.encode(lines + "Assistant:"), ("\nUser:", "\nAssistant:")
    raise ValueError(f"unknown chat style {style!r}; expected one of {CHAT_STYLES}")
