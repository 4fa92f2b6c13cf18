"""Streaming generation: prefill, then one token per step, with text that is always whole."""
from __future__ import annotations

import codecs
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from .gpt2 import GPT2Config, KVCache, Params, forward, lm_head
from .sampling import GenerationSettings, choose_next


class TokenizerLike(Protocol):
    eot_id: int

    def encode(self, text: str) -> list[int]: ...

    def token_bytes(self, token_id: int) -> bytes: ...


@dataclass(frozen=True)
class Step:
    """One generated token. `text` is the new complete text it adds (may be ""), `finish` is
    None while generation goes on, else "length", "stop" (a stop string) or "eos"."""

    token_id: int
    text: str
    prob: float
    top: list[tuple[int, float]]
    finish: str | None = None
    dropped: int = 0  # tokens that fell out of the context window before this one


class ContextWindow:
    """The tokens the KV cache holds. When new tokens would overflow n_ctx, the oldest are
    dropped: the most recent three quarters of the context are kept and run again."""

    def __init__(self, params: Params, config: GPT2Config):
        self.params, self.config = params, config
        self.cache = KVCache(config)
        self.tokens: list[int] = []

    def feed(self, ids: list[int]) -> tuple[np.ndarray, int]:
        """Add tokens; return the logits after the last one and how many old tokens were dropped."""
        dropped = 0
        if len(self.tokens) + len(ids) > self.config.n_ctx:
            everything = self.tokens + ids
            keep = everything[-(self.config.n_ctx * 3 // 4):]
            dropped = len(everything) - len(keep)
            self.tokens, ids = [], keep
            self.cache.length = 0
        hidden = forward(ids, self.params, self.config, self.cache, last_only=True)
        self.tokens += ids
        return lm_head(hidden, self.params)[0], dropped


class TextStream:
    """Token ids in, whole text out: holds back bytes of an unfinished UTF-8 character and
    text that might be the start of a stop string; cuts the text at a stop string."""

    def __init__(self, tokenizer: TokenizerLike, stops: tuple[str, ...] = ()):
        self.tokenizer, self.stops = tokenizer, stops
        self.utf8 = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self.pending = ""

    def feed(self, token_id: int) -> tuple[str, bool]:
        """Return the text that is safe to show now and whether a stop string was reached."""
        self.pending += self.utf8.decode(self.tokenizer.token_bytes(token_id))
        hits = [i for i in (self.pending.find(s) for s in self.stops) if i >= 0]
        if hits:
            out, self.pending = self.pending[:min(hits)], ""
            return out, True
        hold = max((k for s in self.stops for k in range(1, len(s)) if self.pending.endswith(s[:k])), default=0)
        cut = len(self.pending) - hold
        out, self.pending = self.pending[:cut], self.pending[cut:]
        return out, False

    def flush(self) -> str:
        """The text held back for stop strings (an unfinished character is dropped)."""
        out, self.pending = self.pending, ""
        return out


def generate(params: Params, config: GPT2Config, tokenizer: TokenizerLike, prompt: str | list[int],
             settings: GenerationSettings) -> Iterator[Step]:
    """Yield steps until max_new_tokens, a stop string or end-of-text. Close the generator
    (or just stop iterating) to stop between any two tokens."""
    ids = tokenizer.encode(prompt) if isinstance(prompt, str) else list(prompt)
    history = ids or [tokenizer.eot_id]  # an empty prompt starts a new document
    window = ContextWindow(params, config)
    logits, dropped = window.feed(history)
    rng = np.random.default_rng(settings.seed)
    stream = TextStream(tokenizer, settings.stop)
    for n in range(1, settings.max_new_tokens + 1):
        choice = choose_next(logits, history, settings, rng)
        history.append(choice.token_id)
        if choice.token_id == tokenizer.eot_id:
            yield Step(choice.token_id, stream.flush(), choice.prob, choice.top, "eos", dropped)
            return
        text, stopped = stream.feed(choice.token_id)
        finish = "stop" if stopped else "length" if n == settings.max_new_tokens else None
        if finish == "length":
            text += stream.flush()
        yield Step(choice.token_id, text, choice.prob, choice.top, finish, dropped)
        if finish:
            return
        logits, dropped = window.feed([choice.token_id])
