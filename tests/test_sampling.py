"""Sampling: reproducible with a seed, never outside top-k/top-p, repetition penalty works; the
settings read from the page, and described for the page's form and the command line."""
from __future__ import annotations

import re
from dataclasses import fields

import numpy as np
import pytest

from engine import GenerationSettings
from engine.sampling import READERS, apply_repetition_penalty, choose_next, top_ids
from tools.make_settings_fields import TARGET, render

LOGITS = np.array([3.0, 2.5, 2.0, 1.0, 0.5, 0.0, -1.0, -2.0], dtype=np.float32)
PROBS = np.exp(LOGITS - LOGITS.max()) / np.exp(LOGITS - LOGITS.max()).sum()


def draws(settings: GenerationSettings, n: int = 2000, history=()) -> list[int]:
    rng = np.random.default_rng(0)
    return [choose_next(LOGITS, list(history), settings, rng).token_id for _ in range(n)]


def test_same_seed_same_tokens(tiny):
    run = lambda seed: [s.token_id for s in tiny.generate("Hello", seed=seed, max_new_tokens=30, top_k=0, top_p=1.0)]
    assert run(7) == run(7)
    assert run(7) != run(8)


def test_greedy_takes_the_argmax():
    assert set(draws(GenerationSettings(temperature=0, repetition_penalty=1.0), 20)) == {0}


@pytest.mark.parametrize("n", [1, 7, 63, 64, 65, 300, 4096, 50257])
@pytest.mark.parametrize("values", ["distinct", "ties", "nan"])
def test_top_ids_are_a_full_sorts_first_k(n, values):
    """top_ids (which sorts only the values reaching the k-th largest block maximum) gives the
    first k ids of NumPy's stable sort of the whole array: largest first, ties by id, NaNs last."""
    rng = np.random.default_rng(n)
    v = rng.standard_normal(n)
    if values == "ties":
        v = np.round(v * 2)  # a few values, each many times
    if values == "nan":
        v[rng.integers(0, n, max(n // 10, 1))] = np.nan
    for k in sorted({1, 5, 40, n // 2, n} & set(range(1, n + 1))):
        assert list(top_ids(v, k)) == list(np.argsort(-v, kind="stable")[:k]), k


@pytest.mark.parametrize("k", [1, 2, 3, 5])
def test_top_k_never_samples_outside_the_k_most_likely(k):
    seen = set(draws(GenerationSettings(temperature=5.0, top_k=k, top_p=1.0, repetition_penalty=1.0)))
    assert seen == set(range(k))  # high temperature: every allowed token shows up, no other


@pytest.mark.parametrize("p", [0.3, 0.6, 0.9])
def test_top_p_keeps_the_smallest_set_reaching_p(p):
    smallest = int(np.searchsorted(np.cumsum(PROBS), p)) + 1  # PROBS is sorted descending
    seen = set(draws(GenerationSettings(temperature=1.0, top_k=0, top_p=p, repetition_penalty=1.0)))
    assert seen == set(range(smallest))


def test_sampling_follows_the_distribution():
    counts = np.bincount(draws(GenerationSettings(temperature=1.0, top_k=0, top_p=1.0, repetition_penalty=1.0), 20000),
                         minlength=len(LOGITS))
    np.testing.assert_allclose(counts / counts.sum(), PROBS, atol=0.015)


def test_repetition_penalty_lowers_seen_tokens_only():
    penalised = apply_repetition_penalty(LOGITS, [0, 6], 2.0)
    assert penalised[0] < LOGITS[0] and penalised[6] < LOGITS[6]  # positive and negative logits both drop
    unseen = [i for i in range(len(LOGITS)) if i not in (0, 6)]
    np.testing.assert_array_equal(penalised[unseen], LOGITS[unseen])
    assert set(draws(GenerationSettings(temperature=0, repetition_penalty=2.0), 5, history=[0])) == {1}


def test_reported_probabilities_are_the_models(tiny):
    step = next(iter(tiny.generate("Hello", temperature=0, repetition_penalty=1.0, max_new_tokens=1)))
    logits = tiny.logits(tiny.tokenizer.encode("Hello"))[-1].astype(np.float64)
    probs = np.exp(logits - logits.max()) / np.exp(logits - logits.max()).sum()
    assert step.prob == pytest.approx(probs.max(), rel=1e-5)
    assert [i for i, _ in step.top] == list(np.argsort(-probs)[:5])


@pytest.mark.parametrize("bad", [dict(temperature=-1), dict(top_p=0), dict(top_k=-2), dict(max_new_tokens=0)])
def test_bad_settings_are_refused(bad):
    with pytest.raises(ValueError):
        GenerationSettings(**bad)


def test_settings_from_the_page_are_read_by_their_kind():
    page = {"temperature": "0.5", "top_k": "7", "seed": "3", "stop": "END", "max_new_tokens": "", "other": 1}
    assert GenerationSettings.from_dict(page) == GenerationSettings(temperature=0.5, top_k=7, seed=3, stop=("END",))
    assert GenerationSettings.from_dict({"stop": ["a", "", "b"]}).stop == ("a", "b")


@pytest.mark.parametrize("name, value, message", [("top_k", "many", "top_k must be a number, not 'many'"),
                                                  ("temperature", [], "temperature must be a number, not '[]'"),
                                                  ("stop", 5, "stop must be text or a list of texts, not '5'")])
def test_a_value_of_the_wrong_kind_is_refused_by_name(name, value, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        GenerationSettings.from_dict({name: value})


@pytest.mark.parametrize("setting", fields(GenerationSettings), ids=lambda setting: setting.name)
def test_every_setting_describes_itself_and_its_form_limits_are_accepted(setting):
    label, kind, form = setting.metadata["label"], setting.metadata["kind"], setting.metadata["form"]
    assert label and kind in READERS and set(form) <= {"min", "max", "step", "placeholder"}
    assert setting.default is None or READERS[kind](setting.default) == setting.default
    for limit in ("min", "max"):
        if limit in form:
            GenerationSettings(**{setting.name: form[limit]})  # the form's bounds are valid values


def test_the_pages_settings_form_is_made_from_generation_settings():
    """app/settings_fields.py is what `python -m tools.make_settings_fields` writes."""
    assert TARGET.read_text(encoding="utf-8") == render()
