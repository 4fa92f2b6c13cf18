"""Command line: `python -m app generate --model … --prompt …` and `python -m app chat --model …`."""
from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Iterator

from engine import GenerationSettings, Model, Step
from engine.chat import CHAT_STYLES, chat_prompt
from model_loader import load_model
from model_loader.fetch import DEFAULT_CACHE
from model_loader.hub import DEFAULT_ENDPOINT


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    defaults = GenerationSettings()
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--model", default="openai-community/gpt2", help="local folder or Hub repo id")
    common.add_argument("--revision", default="main")
    common.add_argument("--endpoint", default=os.environ.get("HF_ENDPOINT", DEFAULT_ENDPOINT),
                        help="Hub endpoint (default: $HF_ENDPOINT or %s)" % DEFAULT_ENDPOINT)
    common.add_argument("--cache-dir", default=DEFAULT_CACHE)
    common.add_argument("--max-new-tokens", type=int, default=defaults.max_new_tokens)
    common.add_argument("--temperature", type=float, default=defaults.temperature, help="0 = greedy")
    common.add_argument("--top-k", type=int, default=defaults.top_k)
    common.add_argument("--top-p", type=float, default=defaults.top_p)
    common.add_argument("--repetition-penalty", type=float, default=defaults.repetition_penalty)
    common.add_argument("--seed", type=int, default=None)
    common.add_argument("--stop", action="append", default=[], help="stop string (repeatable)")
    parser = argparse.ArgumentParser(prog="python -m app", description="GPT-2 in NumPy")
    commands = parser.add_subparsers(dest="command", required=True)
    generate = commands.add_parser("generate", parents=[common], help="continue a prompt")
    generate.add_argument("--prompt", required=True)
    chat = commands.add_parser("chat", parents=[common], help="talk turn by turn")
    chat.add_argument("--style", choices=CHAT_STYLES, default="transcript",
                      help="eot for chat-tuned models (DialoGPT), transcript for plain GPT-2")
    return parser.parse_args(argv)


def settings_from(args: argparse.Namespace, extra_stops: tuple[str, ...] = ()) -> GenerationSettings:
    return GenerationSettings(max_new_tokens=args.max_new_tokens, temperature=args.temperature,
                              top_k=args.top_k, top_p=args.top_p, repetition_penalty=args.repetition_penalty,
                              stop=tuple(args.stop) + extra_stops, seed=args.seed)


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
    while True:
        try:
            line = input("you> ")
        except EOFError:
            return 0
        turns.append(("user", line))
        ids, stops = chat_prompt(turns, model.tokenizer, args.style)
        print("gpt2> ", end="")
        turns.append(("assistant", stream(model.generate(ids, settings_from(args, stops)), len(ids)).strip()))


if __name__ == "__main__":
    sys.exit(main())
