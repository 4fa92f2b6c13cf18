"""The tokenizer in the browser: the same Tokenizer class as in CPython, with tiktoken's WASM
build (worker/tokenizer.js) doing the BPE."""
from __future__ import annotations

import binascii
import json

from model_loader.tokenizer import GPT2_PATTERN, Tokenizer, Vocabulary
from pyscript.js_modules import tokenizer as tiktoken_wasm


def ranks_text(vocabulary: Vocabulary) -> str:
    """tiktoken's text format for ranks: one "<base64 bytes> <rank>" line per token."""
    return "\n".join(f"{binascii.b2a_base64(token, newline=False).decode()} {rank}"
                     for token, rank in vocabulary.ranks.items())


async def wasm_tokenizer(vocabulary: Vocabulary, tiktoken_base: str) -> Tokenizer:
    encoder = await tiktoken_wasm.create(tiktoken_base, ranks_text(vocabulary),
                                         json.dumps(vocabulary.specials), GPT2_PATTERN)
    return Tokenizer(vocabulary, lambda text: encoder.encode_ordinary(text).to_py().tolist())
