"""The JSON the page and the workers exchange for a reply: shared by the model worker and the
shard workers of the multi-worker split."""
from __future__ import annotations

import json
from dataclasses import replace

from engine import GenerationSettings, Step
from engine.chat import chat_prompt
from engine.generation import TokenizerLike


def read_start(request: str, tokenizer: TokenizerLike) -> tuple[list[int], GenerationSettings]:
    """The prompt ids and settings of a start request: {"prompt": text} continues a text;
    {"turns": [[role, text], ...], "style": "transcript" | "eot"} asks for the next assistant
    turn; "settings" holds GenerationSettings fields. Bad settings raise ValueError."""
    options = json.loads(request)
    settings = GenerationSettings.from_dict(options.get("settings", {}))
    if "turns" in options:
        ids, stops = chat_prompt([tuple(turn) for turn in options["turns"]], tokenizer, options["style"])
        return ids, replace(settings, stop=settings.stop + stops)
    return tokenizer.encode(options["prompt"]), settings


def step_fields(step: Step, tokenizer) -> dict:
    """{text, token_id, prob, top, finish, dropped}; top lists the likeliest tokens as [text, probability]."""
    return {"text": step.text, "token_id": step.token_id, "prob": step.prob,
            "top": [[tokenizer.decode([i]), p] for i, p in step.top], "finish": step.finish, "dropped": step.dropped}
