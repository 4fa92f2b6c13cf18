"""The NumPy GPT-2 against transformers' outputs for the same checkpoints."""
from __future__ import annotations

import numpy as np
import pytest

from support import MODEL_NAMES, fixture_model, reference
from engine import Shard
from engine.chat import chat_prompt, encode_reusing
from engine.generation import common_prefix, fit_context
from engine.parallel import run_shards


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_logits_match_transformers(name):
    ref = reference(name)
    logits = fixture_model(name).logits(ref["ids"].tolist())
    assert logits.dtype == np.float32 and logits.shape == ref["logits"].shape
    scale = np.abs(ref["logits"]).max(axis=-1)
    error = np.abs(logits - ref["logits"]).max(axis=-1)
    assert np.all(error <= 2e-5 * scale), f"worst relative error {np.max(error / scale):.2e}"


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_greedy_continuation_matches_transformers(name):
    ref = reference(name)
    steps = list(fixture_model(name).generate(ref["greedy_prompt"].tolist(), temperature=0,
                                              repetition_penalty=1.0, max_new_tokens=24))
    assert [s.token_id for s in steps] == ref["greedy_ids"].tolist()


@pytest.mark.parametrize("name", ["tiny", "odd-heads"])
def test_cached_decoding_equals_full_forward(name):
    model = fixture_model(name)
    ids = reference(name)["ids"].tolist()
    full = model.logits(ids)
    shard = Shard(model.config, model.params)
    prompt = 5  # a batched prefill, then one token at a time
    logits = run_shards([shard], ids[:prompt], 0)[-1]
    np.testing.assert_allclose(logits, full[prompt - 1], rtol=0, atol=1e-5 * np.abs(full).max())
    for i in range(prompt, len(ids)):
        logits = run_shards([shard], [ids[i]], i)[-1]
        np.testing.assert_allclose(logits, full[i], rtol=0, atol=1e-5 * np.abs(full).max())


def test_generation_runs_past_n_positions(tiny):
    n_ctx = tiny.config.n_ctx
    prompt = reference("tiny")["ids"].tolist()[:40]
    steps = list(tiny.generate(prompt, temperature=0.9, top_k=0, top_p=1.0, max_new_tokens=2 * n_ctx,
                               seed=3, stop=()))
    assert len(steps) == 2 * n_ctx or steps[-1].finish == "eos"
    assert sum(s.dropped for s in steps) > 0


def test_context_window_keeps_the_most_recent_tokens():
    cached, new = list(range(60)), [60, 61, 62, 63, 64]
    assert fit_context(cached, new[:4], 64) == (new[:4], 60, 0)  # fits: appended at the end
    run, position, dropped = fit_context(cached, new, 64)  # 65 > 64: keep the last 48, from 0
    assert (run, position, dropped) == ((cached + new)[-48:], 0, 17)


def test_prompt_longer_than_context_is_trimmed(tiny):
    n_ctx = tiny.config.n_ctx
    ids = (reference("tiny")["ids"].tolist() * 4)[: 2 * n_ctx]
    steps = list(tiny.generate(ids, temperature=0, repetition_penalty=1.0, max_new_tokens=3))
    assert steps[0].dropped == len(ids) - n_ctx * 3 // 4
    window_logits = tiny.logits(ids[steps[0].dropped:])[-1]
    assert steps[0].token_id == int(np.argmax(window_logits))


def counting_runs(session) -> list[int]:
    """The number of tokens each forward pass of the session runs, as they happen."""
    runs, run = [], session.run
    session.run = lambda ids, position: (runs.append(len(ids)), run(ids, position))[1]
    return runs


def test_a_chat_kept_in_one_session_runs_only_each_turns_new_tokens_and_writes_what_a_cold_run_writes():
    model = fixture_model("odd-heads")
    session, turns = model.session(), []
    runs = counting_runs(session)
    settings = dict(temperature=0, repetition_penalty=1.0, max_new_tokens=5)
    for number, message in enumerate(["Hi", "How are you", "Tell me more", "Why", "Thanks"]):
        ids, stops = chat_prompt([*turns, ("user", message)], model.tokenizer, "transcript", session.cached)
        before, runs[:] = list(session.cached), []
        warm = list(model.generate(ids, session=session, stop=stops, **settings))
        cold = list(model.generate(ids, stop=stops, **settings))
        assert [(s.token_id, s.text, s.finish) for s in warm] == [(s.token_id, s.text, s.finish) for s in cold]
        shared = common_prefix(before, ids)
        assert runs[0] == len(ids) - min(shared, len(ids) - 1)  # the prompt: only what the cache lacks
        assert all(n == 1 for n in runs[1:])
        if number:  # at least the last prompt is in the cache: only the last reply and the new turn run
            assert runs[0] <= len(ids) - len(last_prompt)
        turns += [("user", message), ("assistant", "".join(s.text for s in warm))]
        last_prompt = ids
    assert len(session.cached) > 40


def test_a_chat_keeps_the_ids_the_model_gave_its_replies_so_the_next_turn_runs_only_its_own_text():
    """Replies whose tokens are not the ones encoding their text would give (the model's own
    spelling): each next turn keeps them and runs exactly the tokens of its new text."""
    model = fixture_model("odd-heads")  # 128 positions: the five turns fit
    tokenizer, session, turns = model.tokenizer, model.session(), []
    runs = counting_runs(session)
    replies = ["Hello", "Fine.", "A dark night", "Because é", "Welcome"]
    for number, (message, reply) in enumerate(zip(["Hi", "How are you", "Tell me more", "Why", "Thanks"], replies)):
        ids, _ = chat_prompt([*turns, ("user", message)], tokenizer, "transcript", session.cached)
        canonical, _ = chat_prompt([*turns, ("user", message)], tokenizer, "transcript")
        assert tokenizer.decode(ids) == tokenizer.decode(canonical)
        new_text = f"{'' if number == 0 else chr(10)}User: {message}\nAssistant:"
        assert ids[len(session.cached):] == tokenizer.encode(new_text) and ids[:len(session.cached)] == session.cached
        spelled = [i for character in f" {reply}" for i in tokenizer.encode(character)]  # one token a character or less
        assert spelled != tokenizer.encode(f" {reply}")
        runs[:] = []
        list(model.generate(ids + spelled, session=session, max_new_tokens=1))  # the reply, as if the model wrote it
        assert runs == [len(tokenizer.encode(new_text)) + len(spelled)]
        turns += [("user", message), ("assistant", f" {reply}")]  # the reply as the model wrote it
    assert len(session.cached) < model.config.n_ctx  # no turn moved the window


def test_encoding_reuses_cached_ids_only_while_they_spell_the_text_on_whole_characters():
    tokenizer = fixture_model("tiny").tokenizer
    split = tokenizer.encode("Hel") + tokenizer.encode("lo") + tokenizer.encode(" world")
    assert encode_reusing(["Hello world"], tokenizer, split) == split
    assert encode_reusing(["Hello there"], tokenizer, split) == split[:-1] + tokenizer.encode(" there")
    assert encode_reusing(["Hello", tokenizer.eot_id, "again"], tokenizer, split) == (
        tokenizer.encode("Hel") + tokenizer.encode("lo") + [tokenizer.eot_id] + tokenizer.encode("again"))
    eot_first = [tokenizer.eot_id] + tokenizer.encode("a") + tokenizer.encode("b")
    assert encode_reusing([tokenizer.eot_id, "ab"], tokenizer, eot_first) == eot_first
    assert encode_reusing([tokenizer.eot_id, "ab"], tokenizer, eot_first[1:]) == [tokenizer.eot_id] + tokenizer.encode("ab")
    byte_token = {tokenizer.token_bytes(i): i for i in range(tokenizer.eot_id)}
    e_acute = [byte_token[b] for b in (b"\xc3", b"\xa9")]  # "é" a byte a token
    assert encode_reusing(["é!"], tokenizer, e_acute) == e_acute + tokenizer.encode("!")
    assert encode_reusing(["è"], tokenizer, e_acute) == tokenizer.encode("è")  # "è" starts with the same byte


def test_encoding_that_reuses_the_cache_always_spells_the_text(gpt2_tokenizer):
    """Seeded random texts against random caches (an earlier text a byte a token, cut anywhere,
    even inside a character, then other tokens): the ids spell the text, byte for byte, and begin
    with the cache's own ids for as long as those spell it."""
    import random
    tokenizer, rng = gpt2_tokenizer, random.Random(7)
    byte_token = {tokenizer.token_bytes(i): i for i in range(tokenizer.eot_id)}
    words = ["Hello", " world", "é", "日本", "🙂", "\n", " ", "ab", "<|endoftext|>"]
    for _ in range(300):
        old = "".join(rng.choices(words, k=rng.randint(0, 8))).encode()
        cached = [byte_token[bytes([b])] for b in old[:rng.randint(0, len(old))]]
        cached += tokenizer.encode(rng.choice(words)) if rng.random() < 0.5 else []
        text = old.decode()[:rng.randint(0, len(old.decode()))] + "".join(rng.choices(words, k=rng.randint(0, 3)))
        ids = encode_reusing([text], tokenizer, cached)
        assert tokenizer.decode_bytes(ids) == text.encode()
        kept = common_prefix(ids, cached)
        spelled = tokenizer.decode_bytes(cached[:kept + 1])
        assert kept == len(cached) or not text.encode().startswith(spelled) or \
            len(spelled) < len(text.encode()) and text.encode()[len(spelled)] & 0xC0 == 0x80  # mid-character


def test_a_session_cuts_back_to_where_an_edited_prompt_changes_and_regenerates_from_its_last_token():
    model = fixture_model("odd-heads")
    session = model.session()
    runs = counting_runs(session)
    settings = dict(temperature=0, repetition_penalty=1.0, max_new_tokens=4)
    first = model.tokenizer.encode("The old lighthouse keeper climbed the stairs")
    list(model.generate(first, session=session, **settings))
    for prompt in (first[:3] + model.tokenizer.encode(" sailor"), first[:3] + model.tokenizer.encode(" sailor")):
        runs[:] = []
        shared = common_prefix(session.cached, prompt)
        warm = [s.token_id for s in model.generate(prompt, session=session, **settings)]
        assert warm == [s.token_id for s in model.generate(prompt, **settings)]
        assert runs[0] == len(prompt) - min(shared, len(prompt) - 1)
    assert runs[0] == 1  # the same prompt again (a regenerate): only its last token runs


def test_a_session_past_the_context_window_writes_what_a_cold_run_writes(tiny):
    session = tiny.session()
    ids = reference("tiny")["ids"].tolist()
    settings = dict(temperature=0, repetition_penalty=1.0, max_new_tokens=30)
    first = [s.token_id for s in tiny.generate(ids[:40], session=session, **settings)]
    prompt = ids[:40] + first  # longer than the context: the window moves, the cache is run again
    warm = list(tiny.generate(prompt, session=session, **settings))
    cold = list(tiny.generate(prompt, **settings))
    assert [(s.token_id, s.dropped) for s in warm] == [(s.token_id, s.dropped) for s in cold]
    assert warm[0].dropped > 0
