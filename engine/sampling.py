"""From logits to the next token: repetition penalty, temperature, top-k, top-p, seeded draw."""
from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from typing import Any

import numpy as np


def setting(default: Any, label: str, kind: str, **form: float | str) -> Any:
    """A GenerationSettings field that describes itself: its label (the settings form's label and
    the command line's help), its kind ("int", "float" or "texts") and its form input's
    attributes (min, max, step, placeholder)."""
    return field(default=default, metadata={"label": label, "kind": kind, "form": form})


@dataclass(frozen=True)
class GenerationSettings:
    """How to generate: the one list of settings. The command line's options (browser_llm/cli.py)
    and the page's settings form (app/settings_fields.py, made by tools/make_settings_fields.py)
    are made from these fields, in this order."""

    temperature: float = setting(0.8, "Temperature (0 = greedy)", "float", min=0, max=5, step=0.05)
    top_k: int = setting(40, "Top-k (0 = no limit)", "int", min=0, step=1)
    top_p: float = setting(0.95, "Top-p (1 = no limit)", "float", min=0.01, max=1, step=0.01)
    repetition_penalty: float = setting(1.1, "Repetition penalty (1 = none)", "float", min=0.01, max=5, step=0.05)
    max_new_tokens: int = setting(64, "Max new tokens", "int", min=1, step=1)
    seed: int | None = setting(None, "Seed (blank = random)", "int", step=1, placeholder="random")
    stop: tuple[str, ...] = setting((), "Stop strings", "texts")

    def __post_init__(self) -> None:
        checks = {
            "max_new_tokens must be >= 1": self.max_new_tokens >= 1,
            "temperature must be >= 0": self.temperature >= 0,
            "top_k must be >= 0": self.top_k >= 0,
            "top_p must be in (0, 1]": 0 < self.top_p <= 1,
            "repetition_penalty must be > 0": self.repetition_penalty > 0,
            "seed must be a whole number >= 0": self.seed is None or self.seed >= 0,
        }
        problems = [message for message, ok in checks.items() if not ok]
        if problems:
            raise ValueError("; ".join(problems))
        object.__setattr__(self, "stop", tuple(s for s in self.stop if s))

    @classmethod
    def from_dict(cls, values: dict) -> "GenerationSettings":
        """Build from a plain dict (JSON or URL parameters from the page: numbers may come as
        strings, stop as one string or a list); unknown keys and empty values are ignored."""
        kinds = {f.name: f.metadata["kind"] for f in fields(cls)}
        given = {k: v for k, v in values.items() if k in kinds and v not in (None, "")}
        return replace(cls(), **{k: coerce(k, kinds[k], v) for k, v in given.items()})


def as_texts(value) -> tuple[str, ...]:
    """One text, or a list of texts, as a tuple of texts."""
    return (value,) if isinstance(value, str) else tuple(str(s) for s in value)


# Each kind of setting: how a value is read as one, and what it is called in an error.
READERS = {"int": int, "float": float, "texts": as_texts}
KIND_NAMES = {"int": "a number", "float": "a number", "texts": "text or a list of texts"}


def coerce(name: str, kind: str, value):
    """A setting's value as its kind; ValueError naming the setting if it is not one."""
    try:
        return READERS[kind](value)
    except (TypeError, ValueError, OverflowError):
        raise ValueError(f"{name} must be {KIND_NAMES[kind]}, not {str(value)[:40]!r}") from None


@dataclass(frozen=True)
class Choice:
    """A sampled token, its probability and the most likely alternatives (id, probability)."""

    token_id: int
    prob: float
    top: list[tuple[int, float]]


def apply_repetition_penalty(logits: np.ndarray, history: list[int], penalty: float) -> np.ndarray:
    """Make tokens already seen less likely (the CTRL paper's rule, as in transformers)."""
    if penalty == 1 or not history:
        return logits
    seen = np.unique(np.asarray(history))
    logits = logits.copy()
    values = logits[seen]
    logits[seen] = np.where(values < 0, values * penalty, values / penalty)
    return logits


def top_ids(values: np.ndarray, k: int, block: int = 64) -> np.ndarray:
    """Ids of the k largest values, largest first (of equal values, the lower id first). The k
    largest are all at least the k-th largest of the maxima of blocks of `block` values (the k
    blocks with the largest maxima hold k values at least that large), so only those are sorted:
    a few times k values, not the whole vocabulary (whose partition is slow in Pyodide). NaNs
    come last."""
    if k < len(values) // block:
        maxima = np.maximum.reduceat(values, np.arange(0, len(values), block))
        ids = np.flatnonzero(values >= np.partition(maxima, -k)[-k])
        if len(ids) >= k:  # then the k largest are among them (fewer: NaNs among the maxima)
            return ids[np.argsort(-values[ids], kind="stable")[:k]]
    return np.argsort(-values, kind="stable")[:k]


def allowed_tokens(probs: np.ndarray, top_k: int, top_p: float) -> np.ndarray:
    """Ids of the top-k tokens, then the smallest most likely set whose mass reaches top_p."""
    ids = top_ids(probs, top_k if 0 < top_k < len(probs) else len(probs))
    if top_p < 1:
        mass = np.cumsum(probs[ids])
        ids = ids[: int(np.searchsorted(mass, top_p * mass[-1])) + 1]
    return ids


def choose_next(logits: np.ndarray, history: list[int], settings: GenerationSettings,
                rng: np.random.Generator, n_top: int = 5) -> Choice:
    """Pick the next token from the last position's logits (n_vocab,)."""
    logits = apply_repetition_penalty(logits.astype(np.float64), history, settings.repetition_penalty)
    temperature = settings.temperature or 1.0  # greedy reports the model's own probabilities
    probs = logits - logits.max()
    if temperature != 1:
        probs /= temperature
    np.exp(probs, out=probs)
    probs /= probs.sum()
    top = top_ids(probs, min(n_top, len(probs)))
    if settings.temperature == 0:
        token = int(top[0])
    else:
        ids = allowed_tokens(probs, settings.top_k, settings.top_p)
        mass = np.cumsum(probs[ids])
        token = int(ids[min(int(np.searchsorted(mass, rng.random() * mass[-1], side="right")), len(ids) - 1)])
    return Choice(token, float(probs[token]), [(int(i), float(probs[i])) for i in top])
