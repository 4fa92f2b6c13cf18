"""Streaming generation: prefill, then one token per step, with text that is always whole."""
from __future__ import annotations

import codecs
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from .parallel import Shard, run_shards
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


def fit_context(cached: list[int], ids: list[int], n_ctx: int) -> tuple[list[int], int, int]:
    """Where new tokens go in a KV cache that holds `cached`: (ids to run, cache position to run
    them at, old tokens dropped). When they would overflow n_ctx, the oldest tokens are dropped:
    the most recent three quarters of the context are run again from position 0."""
    if len(cached) + len(ids) <= n_ctx:
        return ids, len(cached), 0
    everything = cached + ids
    keep = everything[-(n_ctx * 3 // 4):]
    return keep, 0, len(everything) - len(keep)


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


def common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    """How many leading tokens two sequences share."""
    n = min(len(a), len(b))
    return next((i for i in range(n) if a[i] != b[i]), n)


class Decoder:
    """The generation loop, turned inside out so that the forward passes can run anywhere (here,
    or split over workers: engine/parallel.py): `feed` says which ids to run at which cache
    position; `next(logits)` takes the logits after them and returns the Step; then `feed` is
    the next pass, or None when generation is over.

    `cached` is what the KV cache already holds (the last reply's conversation, say): the part
    of the prompt it starts with is not run again (`reused` says how many tokens), only the rest."""

    def __init__(self, n_ctx: int, tokenizer: TokenizerLike, prompt: str | list[int],
                 settings: GenerationSettings, cached: Sequence[int] = ()):
        ids = tokenizer.encode(prompt) if isinstance(prompt, str) else list(prompt)
        self.n_ctx, self.tokenizer, self.settings = n_ctx, tokenizer, settings
        self.prompt_tokens = len(ids)
        self.history = ids or [tokenizer.eot_id]  # an empty prompt starts a new document
        self.rng = np.random.default_rng(settings.seed)
        self.stream = TextStream(tokenizer, settings.stop)
        keep = min(common_prefix(cached, self.history), len(self.history) - 1)  # the last one runs: its logits
        self.cached: list[int] = list(cached[:keep])  # the tokens in the KV cache
        self.n = 0
        self.dropped = 0
        self.feed: tuple[list[int], int] | None = self.plan(self.history[keep:])
        self.reused = self.feed[1]  # prompt tokens not run again (0 when the window moved)

    def plan(self, ids: list[int]) -> tuple[list[int], int]:
        ids, position, self.dropped = fit_context(self.cached, ids, self.n_ctx)
        self.cached = self.cached[:position] + ids
        return ids, position

    def next(self, logits: np.ndarray) -> Step:
        """The step chosen from the logits (n_vocab,) after the last feed."""
        settings, tokenizer = self.settings, self.tokenizer
        self.n += 1
        choice = choose_next(np.asarray(logits, dtype=np.float32).reshape(-1), self.history, settings, self.rng)
        self.history.append(choice.token_id)
        self.feed = None
        if choice.token_id == tokenizer.eot_id:
            return Step(choice.token_id, self.stream.flush(), choice.prob, choice.top, "eos", self.dropped)
        text, stopped = self.stream.feed(choice.token_id)
        finish = "stop" if stopped else "length" if self.n == settings.max_new_tokens else None
        if finish == "length":
            text += self.stream.flush()
        step = Step(choice.token_id, text, choice.prob, choice.top, finish, self.dropped)
        if not finish:
            self.feed = self.plan([choice.token_id])
        return step


class Session:
    """A model's shards (one: the whole model) and the tokens their KV caches hold, kept from
    one reply to the next so that a chat runs only what is new."""

    def __init__(self, shards: Sequence[Shard]):
        self.shards = list(shards)
        self.cached: list[int] = []

    def forget_from(self, position: int) -> None:
        """A pass writes from `position` on: what the caches held there is gone (even if it fails)."""
        self.cached = self.cached[:position]

    def ran(self, ids: Sequence[int], position: int) -> None:
        """A pass of `ids` at `position` is over: the caches hold them."""
        self.cached = self.cached[:position] + list(ids)

    def run(self, ids: Sequence[int], position: int) -> np.ndarray:
        """One forward pass over the shards in this process: the last token's logits."""
        self.forget_from(position)
        logits = run_shards(self.shards, ids, position)[-1]
        self.ran(ids, position)
        return logits

    def decoder(self, tokenizer: TokenizerLike, prompt: str | list[int], settings: GenerationSettings) -> Decoder:
        """A reply's generation loop, reusing what the caches hold."""
        return Decoder(self.shards[0].config.n_ctx, tokenizer, prompt, settings, self.cached)


def generate(session: Session, tokenizer: TokenizerLike, prompt: str | list[int],
             settings: GenerationSettings) -> Iterator[Step]:
    """Yield steps until max_new_tokens, a stop string or end-of-text, from a model on one
    shard or split over several. Close the generator (or just stop iterating) to stop between
    any two tokens."""
    decoder = session.decoder(tokenizer, prompt, settings)
    while decoder.feed is not None:
        yield decoder.next(session.run(*decoder.feed))
