"""The command line: `browser-llm generate --model … --prompt …` and `browser-llm chat --model …`
(or `python -m browser_llm …` in a checkout)."""
from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Iterator
from dataclasses import Field, fields

from . import DEFAULT_CACHE, DEFAULT_ENDPOINT, load_model
from .engine import GenerationSettings, Model, Step
from .engine.chat import CHAT_STYLES, chat_prompt
from .engine.sampling import READERS


def setting_option(setting: Field) -> dict:
    """argparse's arguments for one GenerationSettings field: its label (and default) as help;
    texts are a repeatable option."""
    label, kind = setting.metadata["label"], setting.metadata["kind"]
    if kind == "texts":
        return {"action": "append", "default": [], "metavar": "TEXT", "help": f"{label} (repeatable)"}
    default = "" if setting.default is None else f", default {setting.default}"
    return {"type": READERS[kind], "default": setting.default, "help": label + default}


def add_setting_options(parser: argparse.ArgumentParser) -> None:
    """One option per GenerationSettings field, in its order: top_k is --top-k."""
    group = parser.add_argument_group("generation settings")
    for setting in fields(GenerationSettings):
        group.add_argument("--" + setting.name.replace("_", "-"), **setting_option(setting))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--model", default="openai-community/gpt2", help="local folder or Hub repo id")
    common.add_argument("--revision", default="main")
    common.add_argument("--endpoint", default=os.environ.get("HF_ENDPOINT", DEFAULT_ENDPOINT),
                        help="Hub endpoint (default: $HF_ENDPOINT or %s)" % DEFAULT_ENDPOINT)
    common.add_argument("--cache-dir", default=DEFAULT_CACHE)
    add_setting_options(common)
    parser = argparse.ArgumentParser(prog="browser-llm", description="GPT-2 in NumPy")
    commands = parser.add_subparsers(dest="command", required=True)
    generate = commands.add_parser("generate", parents=[common], help="continue a prompt")
    generate.add_argument("--prompt", required=True)
    chat = commands.add_parser("chat", parents=[common], help="talk turn by turn")
    chat.add_argument("--style", choices=CHAT_STYLES, default="transcript",
                      help="eot for chat-tuned models (DialoGPT), transcript for plain GPT-2")
    return parser.parse_args(argv)


def settings_from(args: argparse.Namespace, extra_stops: tuple[str, ...] = ()) -> GenerationSettings:
    """The settings the options give, with `extra_stops` (a chat style's) added to --stop's."""
    chosen = {setting.name: getattr(args, setting.name) for setting in fields(GenerationSettings)}
    return GenerationSettings(**{**chosen, "stop": (*args.stop, *extra_stops)})


def stream(steps: Iterator[Step], n_prompt: int) -> str:
    """Print each piece of text as it comes; report speeds on stderr; return the whole text."""
    start = time.perf_counter()
    first = None
    pieces = []
    for n, step in enumerate(steps, 1):
        if first is None:
            first = time.perf_counter()
        pieces.append(step.text)
        print(step.text, end="", flush=True)
    end = time.perf_counter()
    print(flush=True)
    if first is not None:
        decode = f", decode {(n - 1) / (end - first):.1f} tok/s" if n > 1 else ""
        print(f"[prompt {n_prompt} tokens, {n_prompt / (first - start):.1f} tok/s{decode}, {n} new tokens]",
              file=sys.stderr)
    return "".join(pieces)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        model: Model = load_model(args.model, args.revision, args.endpoint, args.cache_dir)
    except (OSError, ValueError) as e:
        print(f"error: cannot load {args.model}: {e}", file=sys.stderr)
        return 1
    if args.command == "generate":
        ids = model.tokenizer.encode(args.prompt)
        print(args.prompt, end="", flush=True)
        stream(model.generate(ids, settings_from(args)), len(ids))
        return 0
    turns: list[tuple[str, str]] = []
    session = model.session()  # each turn runs only what the last one did not
    while True:
        try:
            line = input("you> ")
        except EOFError:
            return 0
        turns.append(("user", line))
        ids, stops = chat_prompt(turns, model.tokenizer, args.style, session.cached)
        print("gpt2> ", end="")
        turns.append(("assistant", stream(model.generate(ids, settings_from(args, stops), session), len(ids))))
