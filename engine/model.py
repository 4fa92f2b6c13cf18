"""A loaded GPT-2: its weights, its tokenizer and the two things you do with them."""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from .generation import Step, TokenizerLike, generate
from .gpt2 import GPT2Config, KVCache, Params, forward, lm_head
from .sampling import GenerationSettings


@dataclass
class Model:
    config: GPT2Config
    params: Params
    tokenizer: TokenizerLike

    def logits(self, token_ids: list[int]) -> np.ndarray:
        """Full forward pass: float32 logits (len(token_ids), n_vocab)."""
        ids = [int(i) for i in token_ids]
        return lm_head(forward(ids, self.params, self.config, KVCache(self.config)), self.params)

    def generate(self, prompt: str | list[int], settings: GenerationSettings | None = None,
                 **overrides) -> Iterator[Step]:
        """Stream new tokens for a prompt (text or token ids); keyword arguments override
        fields of `settings` (max_new_tokens, temperature, top_k, top_p, repetition_penalty,
        stop, seed)."""
        settings = GenerationSettings.from_dict({**vars(settings or GenerationSettings()), **overrides})
        return generate(self.params, self.config, self.tokenizer, prompt, settings)

    @property
    def n_params(self) -> int:
        """Parameters, counting a tied LM head once."""
        arrays = [self.params.wte, self.params.wpe, self.params.ln_f_g, self.params.ln_f_b]
        arrays += [a for block in self.params.blocks for a in vars(block).values()]
        if self.params.lm_head is not self.params.wte:
            arrays.append(self.params.lm_head)
        return sum(a.size for a in arrays)
