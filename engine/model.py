"""A loaded model: its weights, its tokenizer and the two things you do with them."""
from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

from .generation import Session, Step, TokenizerLike, generate
from .parallel import Shard, run_shards
from .sampling import GenerationSettings


@dataclass
class Model:
    config: object  # an architecture's config (GPT2Config)
    params: object  # and its params (GPT-2's Params)
    tokenizer: TokenizerLike
    new_cache: Callable | None = None  # makes a session's KV cache (Shard's new_cache); None: NumPy's

    def logits(self, token_ids: list[int]) -> np.ndarray:
        """Full forward pass: float32 logits [len(token_ids), n_vocab] (in a KV cache of its own,
        NumPy's, made for it)."""
        ids = [int(i) for i in token_ids]
        return run_shards([Shard(self.config, self.params)], ids, 0, last_only=False)

    def session(self) -> Session:
        """A KV cache kept across replies: give it to generate() turn after turn and each reply
        runs only the tokens its prompt does not share with what the cache holds."""
        return Session([Shard(self.config, self.params, self.new_cache)])

    def generate(self, prompt: str | list[int], settings: GenerationSettings | None = None,
                 session: Session | None = None, **overrides) -> Iterator[Step]:
        """Stream new tokens for a prompt (text or token ids); keyword arguments override
        fields of `settings` (max_new_tokens, temperature, top_k, top_p, repetition_penalty,
        stop, seed). Without a session, the prompt runs from scratch."""
        settings = GenerationSettings.from_dict({**vars(settings or GenerationSettings()), **overrides})
        return generate(session or self.session(), self.tokenizer, prompt, settings)

    @property
    def n_params(self) -> int:
        """Parameters, counting a tied LM head once."""
        return sum(a.size for a in self.params.arrays)
