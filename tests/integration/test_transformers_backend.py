"""TransformersLM on tiny random models: sampling, stopping, scoring, the prefix cache,
threads and input checks, through the real transformers code path."""

from __future__ import annotations

import functools
import math
import threading
import time

import numpy as np
import pytest
import torch

from specs_engine.backends import clear_model_cache, load_count, load_language_model
from specs_engine.backends.sampling import sample_next
from specs_engine.backends.hf.lm import TransformersLM
from specs_engine.errors import ConfigError
from specs_engine.models import LanguageModel, ProposalParams

QUESTION = [{"role": "user", "content": "Ann has 3 apples and buys 4 more. How many apples?"}]


def params(**overrides) -> ProposalParams:
    base = dict(delimiter="\n\n", max_new_tokens=48, temperature=1.0, top_p=1.0, seed=0)
    return ProposalParams(**{**base, **overrides})


@pytest.fixture()
def draft(tiny_draft_dir) -> TransformersLM:
    """A fresh draft per test, so prefix-cache counters start at zero."""
    return TransformersLM.from_pretrained(tiny_draft_dir, dtype="float32")


@pytest.fixture()
def prompt(draft) -> list[int]:
    return draft.encode_prompt(QUESTION)


def close(a: list[float], b: list[float], tol: float = 1e-3) -> bool:
    return len(a) == len(b) and all(abs(x - y) <= tol for x, y in zip(a, b))


# ---- the protocol and the metadata ------------------------------------------------

def test_is_a_language_model_with_metadata(draft, tiny_draft_dir, tiny_target_dir, tiny_other_tokenizer_dir):
    target = TransformersLM.from_pretrained(tiny_target_dir, dtype="float32")
    other = TransformersLM.from_pretrained(tiny_other_tokenizer_dir, dtype="float32")
    assert isinstance(draft, LanguageModel)
    assert draft.context_window == 2048
    assert draft.tokenizer_fingerprint == target.tokenizer_fingerprint
    assert draft.tokenizer_fingerprint != other.tokenizer_fingerprint
    assert draft.name == tiny_draft_dir.name


def test_encode_prompt_applies_chat_template_only_to_messages(draft):
    chat = draft.tokenizer.decode(draft.encode_prompt(QUESTION))
    assert chat.startswith("<|im_start|>user\n") and chat.endswith("<|im_start|>assistant\n")
    assert draft.encode_prompt("Ann has 3 apples.") == draft.encode("Ann has 3 apples.")
    assert draft.encode("\n\n") and draft.tokenizer.decode(draft.encode("\n\n")) == "\n\n"


# ---- propose ------------------------------------------------------------------------

def test_propose_shapes_and_delimiter_cut(draft, prompt):
    second = prompt + draft.encode("Ann starts with 3 apples.\n\n")
    batches = draft.propose([prompt, second], 3, params(max_new_tokens=200))
    assert [len(b) for b in batches] == [3, 3]
    reasons = set()
    for cand in (c for b in batches for c in b):
        assert 0 < len(cand.token_ids) == len(cand.token_logprobs) <= 200
        assert all(lp <= 0 for lp in cand.token_logprobs)
        assert cand.text == draft.decode(cand.token_ids)
        reasons.add(cand.finish_reason)
        if cand.finish_reason == "delimiter":  # cut right after the token completing "\n\n"
            assert "\n\n" in cand.text and "\n\n" not in draft.decode(cand.token_ids[:-1])
    assert "delimiter" in reasons


def test_propose_logprobs_match_score(draft, prompt):
    [cands] = draft.propose([prompt], 4, params())
    scores = draft.score([prompt] * 4, [c.token_ids for c in cands])
    for cand, score in zip(cands, scores):
        assert close(list(cand.token_logprobs), score)
    fresh = TransformersLM(draft.model, draft.tokenizer)  # no cache: full prefill
    assert all(close(a, b) for a, b in zip(scores, fresh.score([prompt] * 4, [c.token_ids for c in cands])))


def test_greedy_takes_argmax_with_its_temperature_one_logprob(draft, prompt):
    [a] = draft.propose([prompt], 2, params(greedy=True, seed=1, temperature=0.3))
    [b] = draft.propose([prompt], 1, params(greedy=True, seed=2))
    assert a[0].token_ids == a[1].token_ids == b[0].token_ids
    assert close(list(a[0].token_logprobs), list(b[0].token_logprobs), 1e-5)
    [score] = draft.score([prompt], [a[0].token_ids])
    assert close(list(a[0].token_logprobs), score)


def test_same_seed_same_candidates_other_seed_differs(draft, prompt, tiny_draft_dir):
    first = draft.propose([prompt], 4, params(seed=7))
    again = draft.propose([prompt], 4, params(seed=7))
    fresh = TransformersLM.from_pretrained(tiny_draft_dir, dtype="float32").propose([prompt], 4, params(seed=7))
    other = draft.propose([prompt], 4, params(seed=8))
    tokens = lambda batches: [c.token_ids for c in batches[0]]  # noqa: E731
    assert tokens(first) == tokens(again) == tokens(fresh)
    assert tokens(first) != tokens(other)


def test_length_and_eos(draft, prompt):
    [short] = draft.propose([prompt], 4, params(delimiter="@@@", max_new_tokens=5))
    assert all(c.finish_reason in ("length", "eos") and len(c.token_ids) <= 5 for c in short)
    [long] = draft.propose([prompt], 16, params(delimiter="@@@", max_new_tokens=300))
    ended = [c for c in long if c.finish_reason == "eos"]
    assert ended, "the tiny model is biased toward EOS; 16 rows of 300 tokens must end some"
    for cand in ended:
        assert cand.token_ids[-1] in draft.eos_token_ids and cand.ends_solution
        assert "<|endoftext|>" not in cand.text


def test_deadline_is_honoured(draft, prompt):
    [now] = draft.propose([prompt], 4, params(deadline=time.monotonic()))
    assert all(len(c.token_ids) == 1 for c in now)  # one token, then the deadline
    assert "deadline" in {c.finish_reason for c in now}
    start = time.monotonic()
    [soon] = draft.propose([prompt], 4, params(delimiter="@@@", max_new_tokens=100_000,
                                                deadline=start + 0.2))
    assert time.monotonic() - start < 1.5
    assert {c.finish_reason for c in soon} <= {"deadline", "eos"}


def test_stop_strings_cut_before_the_stop(draft, prompt):
    [plain] = draft.propose([prompt], 4, params(delimiter="@@@", max_new_tokens=12, seed=3))
    row = max(range(4), key=lambda i: len(plain[i].token_ids))
    stop = draft.decode(plain[row].token_ids[5:7])
    assert stop.strip(), "pick a visible stop string"
    [cut] = draft.propose([prompt], 4, params(delimiter="@@@", max_new_tokens=12, seed=3, stop=(stop,)))
    original = plain[row].text
    assert cut[row].finish_reason == "stop"
    assert stop not in cut[row].text
    assert original[: original.index(stop)].startswith(cut[row].text)
    assert cut[row].token_ids == plain[row].token_ids[: len(cut[row].token_ids)]
    assert len(cut[row].token_logprobs) == len(cut[row].token_ids)


# ---- every beam's candidates in one batch ----------------------------------------------

def test_beams_of_different_lengths_decode_as_one_batch(draft, prompt):
    """Prefixes of different lengths, left-padded into one batch, get the candidates each
    gets alone (greedy: token for token), with one forward per token for the whole round;
    a duplicate beam is prefilled once."""
    second = draft.encode_prompt("Bob has 5 pens.")
    assert len(second) != len(prompt)
    greedy = params(greedy=True, max_new_tokens=16)
    alone = [TransformersLM(draft.model, draft.tokenizer).propose([p], 2, greedy)[0] for p in (prompt, second, prompt)]
    calls = forward_count(draft)
    together = draft.propose([prompt, second, prompt], 2, greedy)
    assert [[c.token_ids for c in b] for b in together] == [[c.token_ids for c in b] for b in alone]
    pairs = [(a, b) for x, y in zip(together, alone) for a, b in zip(x, y)]
    assert all(close(list(a.token_logprobs), list(b.token_logprobs), 1e-4) for a, b in pairs)
    longest = max(len(c.token_ids) for b in together for c in b)
    assert calls[0] == 2 + longest - 1  # two prefills, then one forward per fed token


def test_a_padded_rows_cached_kv_continues_like_a_fresh_prefill(draft, prompt):
    """A finished row goes back to the prefix cache without its left padding: the next
    step over it runs only the candidate's last token, and scores as an uncached model does."""
    second = draft.encode_prompt("Bob has 5 pens.")
    assert len(second) < len(prompt)  # its rows are the padded ones
    _, padded = draft.propose([prompt, second], 2, params(max_new_tokens=12, seed=4))
    following = second + list(max(padded, key=lambda c: len(c.token_ids)).token_ids)
    conts = [draft.encode("So he has 7 pens.")]
    before = draft.prefill_tokens
    cached = draft.score([following], conts)
    assert draft.prefill_tokens - before == 1  # the candidate's last token, never fed
    uncached = TransformersLM(draft.model, draft.tokenizer, cache_size=0)
    assert close(cached[0], uncached.score([following], conts)[0], 1e-4)


def test_states_read_in_a_padded_batch_are_each_candidates_own(draft, prompt):
    second = draft.encode_prompt("Bob has 5 pens.")
    batches = draft.propose([prompt, second], 3, params(max_new_tokens=10, seed=5, with_states=True))
    for prefix, batch in zip((prompt, second), batches):
        for cand in batch:
            expected = plain_state(draft, prefix + list(cand.token_ids)).numpy()
            assert np.abs(cand.state - expected).max() < STATE_TOL


# ---- the prefix cache ------------------------------------------------------------------

def test_prefix_cache_prefills_only_new_tokens(draft, prompt):
    draft.propose([prompt], 2, params())
    assert draft.prefill_tokens == len(prompt)
    step = draft.encode("Ann starts with 3 apples.\n\n")
    draft.propose([prompt + step], 2, params())
    assert draft.prefill_tokens == len(prompt) + len(step)
    [cands] = draft.propose([prompt + step], 2, params(max_new_tokens=20))
    before = draft.prefill_tokens
    draft.propose([prompt + step + list(cands[0].token_ids)], 2, params())
    assert draft.prefill_tokens - before <= 1  # the candidate's own KV was kept


def test_score_after_propose_reuses_the_prefix(draft, prompt):
    [cands] = draft.propose([prompt], 3, params())
    before = draft.prefill_tokens
    draft.score([prompt] * 3, [c.token_ids for c in cands])
    assert draft.prefill_tokens == before
    assert draft.scored_tokens == sum(len(c.token_ids) for c in cands)


def test_cached_and_uncached_scores_agree(draft, prompt):
    steps = [draft.encode(f"Step {i}: {i} + {i} = {2 * i}.\n\n") for i in range(1, 6)]
    prefix = list(prompt)
    fresh = TransformersLM(draft.model, draft.tokenizer, cache_size=0)
    for step in steps:  # each step extends the previous prefix, as in a search
        cached = draft.score([prefix], [step])
        assert close(cached[0], fresh.score([prefix], [step])[0], 1e-4)
        prefix = prefix + step
    assert draft.prefill_tokens < fresh.prefill_tokens


def test_score_batched_equals_per_item(draft, prompt):
    other = draft.encode_prompt("Bob has 5 pens.")
    prefixes = [prompt, prompt, other, prompt, other]
    conts = [draft.encode(t) for t in ("Then 3 + 4 = 7.\n\n", "So 7.", "He buys 2.\n\n", "", "#### 7")]
    batched = draft.score(prefixes, conts)
    assert batched[3] == []
    single = TransformersLM(draft.model, draft.tokenizer, cache_size=0)
    for prefix, cont, scores in zip(prefixes, conts, batched):
        assert close(scores, single.score([prefix], [cont])[0], 1e-4)
        assert len(scores) == len(cont)


def test_llama_with_other_tokenizer_works(tiny_other_tokenizer_dir):
    lm = TransformersLM.from_pretrained(tiny_other_tokenizer_dir, dtype="float32")
    prompt = lm.encode_prompt(QUESTION)
    [cands] = lm.propose([prompt], 2, params())
    for cand, score in zip(cands, lm.score([prompt] * 2, [c.token_ids for c in cands])):
        assert close(list(cand.token_logprobs), score)


# ---- threads ---------------------------------------------------------------------------

def test_eight_threads_get_the_sequential_results(draft, prompt, tiny_draft_dir):
    def work(lm: TransformersLM, seed: int):
        [cands] = lm.propose([prompt], 2, params(seed=seed, max_new_tokens=16))
        return [c.token_ids for c in cands], lm.score([prompt] * 2, [c.token_ids for c in cands])

    sequential = TransformersLM.from_pretrained(tiny_draft_dir, dtype="float32")
    expected = [work(sequential, seed) for seed in range(8)]
    results: dict[int, tuple] = {}
    errors: list[BaseException] = []

    def run(seed: int) -> None:
        try:
            results[seed] = work(draft, seed)
        except BaseException as exc:  # noqa: BLE001 - reported by the assert below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(seed,)) for seed in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    for seed in range(8):
        assert results[seed][0] == expected[seed][0]
        assert all(close(a, b, 1e-4) for a, b in zip(results[seed][1], expected[seed][1]))


# ---- the sampler -----------------------------------------------------------------------

def test_nucleus_sampling_keeps_the_top_mass_and_reports_its_logprob():
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]]))
    gen = torch.Generator().manual_seed(0)
    seen = set()
    for _ in range(200):
        token, logprob = sample_next(logits, 1.0, 0.7, False, gen)
        seen.add(int(token))
        assert math.isclose(float(logprob), math.log([0.625, 0.375][int(token)]), abs_tol=1e-5)
    assert seen == {0, 1}
    token, logprob = sample_next(logits, 0.5, 1.0, False, torch.Generator().manual_seed(1))
    tempered = torch.log_softmax(logits / 0.5, dim=-1)[0]
    assert math.isclose(float(logprob), float(tempered[int(token)]), abs_tol=1e-5)


# ---- wrong inputs ----------------------------------------------------------------------

@pytest.mark.parametrize("count", [0, -1, 1.5, True])
def test_bad_num_candidates_is_refused(draft, prompt, count):
    with pytest.raises(ConfigError, match="num_candidates"):
        draft.propose([prompt], count, params())


@pytest.mark.parametrize(
    "overrides, name",
    [({"temperature": 0.0}, "temperature"), ({"top_p": 0.0}, "top_p"),
     ({"max_new_tokens": 0}, "max_new_tokens"), ({"delimiter": ""}, "delimiter"), ({"stop": ("",)}, "stop")],
)
def test_bad_params_are_refused(draft, prompt, overrides, name):
    with pytest.raises(ConfigError, match=name):
        draft.propose([prompt], 1, params(**overrides))


def test_bad_prefixes_and_prompts_are_refused(draft, prompt):
    with pytest.raises(ConfigError, match=r"prefixes\[1\] is empty"):
        draft.propose([prompt, []], 1, params())
    with pytest.raises(ConfigError, match="not a token id"):
        draft.score([prompt], [[10**6]])
    with pytest.raises(ConfigError, match="one prefix per continuation"):
        draft.score([prompt, prompt], [[1]])
    with pytest.raises(ConfigError, match="context window"):
        draft.propose([[1] * 2048], 1, params())
    with pytest.raises(ConfigError, match="prompt"):
        draft.encode_prompt([{"role": "user"}])
    with pytest.raises(ConfigError, match="no tokens"):
        draft.encode_prompt("")


# ---- loading ---------------------------------------------------------------------------

def test_load_language_model_caches_per_process(tiny_draft_dir):
    clear_model_cache()
    before = load_count()
    a = load_language_model(tiny_draft_dir, dtype="float32")
    b = load_language_model(str(tiny_draft_dir), dtype="float32")
    assert a is b and load_count() == before + 1
    c = load_language_model(tiny_draft_dir, dtype="bfloat16")
    assert c is not a and load_count() == before + 2


def test_loader_refuses_unknown_backend_dtype_and_pickles(tiny_draft_dir, tmp_path):
    with pytest.raises(ConfigError, match="backend='tgi'.*transformers, vllm, openai"):
        load_language_model(tiny_draft_dir, backend="tgi")
    with pytest.raises(ConfigError, match="dtype='fp8'"):
        TransformersLM.from_pretrained(tiny_draft_dir, dtype="fp8")
    with pytest.raises(ConfigError, match="does not exist"):
        TransformersLM.from_pretrained(str(tmp_path / "missing" / "model"))
    pickled = tmp_path / "pickled"
    model = TransformersLM.from_pretrained(tiny_draft_dir, dtype="float32")
    _save_pickle(model.model, pickled)
    model.tokenizer.save_pretrained(pickled)
    assert not list(pickled.glob("*.safetensors"))
    with pytest.raises(ConfigError, match="allow_pickle=True"):
        TransformersLM.from_pretrained(pickled, dtype="float32")
    trusted = TransformersLM.from_pretrained(pickled, dtype="float32", allow_pickle=True)
    prompt = trusted.encode_prompt("Ann has 3 apples.")
    assert close(trusted.score([prompt], [[5, 6]])[0], model.score([prompt], [[5, 6]])[0], 1e-5)


def _save_pickle(model, path) -> None:
    """The legacy layout: config.json beside a pickled pytorch_model.bin."""
    path.mkdir(parents=True, exist_ok=True)
    model.config.save_pretrained(path)
    torch.save(model.state_dict(), path / "pytorch_model.bin")


# ---- hidden states from the scoring forward (a probe on the target's own pass) ---------

STATE_TOL = 1e-4
"""float32: a state read off the batched, cached, padded forward against a plain forward
of the whole sequence differs by float rounding only."""


def forward_count(lm: TransformersLM) -> list[int]:
    """A one-element list counting the model's forward calls from now on."""
    calls = [0]
    lm.model.register_forward_hook(lambda *_: calls.__setitem__(0, calls[0] + 1))
    return calls


def plain_state(lm: TransformersLM, ids) -> torch.Tensor:
    """The final hidden state at the last of ids, from one uncached forward."""
    with torch.inference_mode():
        return lm.model(torch.tensor([list(ids)]), output_hidden_states=True).hidden_states[-1][0, -1]


def test_the_last_hidden_state_is_the_lm_heads_input(draft, prompt):
    """What the states are: the final norm's output, which the LM head turns into logits."""
    with torch.inference_mode():
        out = draft.model(torch.tensor([prompt]), output_hidden_states=True)
        assert torch.allclose(draft.model.lm_head(out.hidden_states[-1]), out.logits, atol=1e-5)
        unnormed = out.hidden_states[-1] / draft.model.model.norm.weight
        assert torch.allclose(unnormed.pow(2).mean(-1), torch.ones(1), atol=1e-3)  # RMS-normed


@pytest.mark.parametrize("offset", [0, 1])
def test_score_with_states_gives_score_and_the_plain_forwards_states(draft, prompt, offset):
    """The state `offset` tokens before each continuation's last: a plain forward's state
    at that position; None for a continuation of offset tokens or fewer ("\n\n" is one)."""
    other = draft.encode_prompt("Bob has 5 pens.")
    prefixes = [prompt, prompt, other, prompt, prompt]
    conts = [draft.encode(t) for t in ("Then 3 + 4 = 7.\n\n", "So 7.", "He buys 2.\n\n", "", "\n\n")]
    scores, states = draft.score_with_states(prefixes, conts, offset=offset)
    fresh = TransformersLM(draft.model, draft.tokenizer)
    assert scores == fresh.score(prefixes, conts)
    assert states[3] is None and scores[3] == [] and len(conts[4]) == 1
    for prefix, cont, state in zip(prefixes, conts, states):
        if len(cont) <= offset:
            assert state is None
        else:
            assert state.dtype == np.float32 and state.shape == (draft.model.config.hidden_size,)
            expected = plain_state(draft, prefix + cont[: len(cont) - offset]).numpy()
            assert np.abs(state - expected).max() < STATE_TOL
    with pytest.raises(ConfigError, match="offset=-1 is not allowed: give a non-negative integer"):
        draft.score_with_states(prefixes, conts, offset=-1)


def test_score_with_states_runs_no_more_forwards_than_score(tiny_draft_dir, prompt):
    plain, at_last, before_last = (TransformersLM.from_pretrained(tiny_draft_dir, dtype="float32") for _ in range(3))
    conts = [plain.encode(t) for t in ("Then 3 + 4 = 7.\n\n", "So 7.", "3 apples.")]
    counts = []
    for lm, call in ((plain, plain.score), (at_last, at_last.score_with_states),
                     (before_last, functools.partial(before_last.score_with_states, offset=1))):
        calls = forward_count(lm)
        call([prompt] * 3, conts)
        call([prompt + conts[0]] * 2, conts[1:])  # the next step, over the cached prefix
        counts.append(calls[0])
    # the prompt's prefill, then one batch per call (the second prefix was scored whole)
    assert counts == [3, 3, 3]


@pytest.mark.parametrize("offset", [0, 1])
def test_proposals_with_states_are_the_same_candidates_with_their_last_tokens_state(draft, prompt, offset):
    """Each candidate's state `offset` tokens before its last token, from ONE extra
    forward (feeding each candidate's last offset + 1 tokens over its own KV); None for
    a candidate of offset tokens or fewer. A stop string cuts some candidates short:
    their state is read from the kept tokens."""
    settings = dict(max_new_tokens=16, seed=3, temperature=1.5, stop=(" Bob", "ies"))
    draft.propose([prompt], 1, params(max_new_tokens=1))  # the prompt's KV is cached from here
    calls = forward_count(draft)
    [plain] = draft.propose([prompt], 6, params(**settings))
    [probed] = draft.propose([prompt], 6, params(with_states=True, state_offset=offset, **settings))
    assert probed == plain  # states do not compare: tokens, log-probs and finish reasons do
    assert all(c.state is None for c in plain)
    assert len({len(c.token_ids) for c in probed}) > 1, "candidates of several lengths"
    assert "stop" in {c.finish_reason for c in probed}
    longest = max(len(c.token_ids) for c in probed)
    assert calls[0] == 2 * (longest - 1) + 1  # a forward per fed token each, one for the states
    for cand in probed:
        if len(cand.token_ids) > offset:
            expected = plain_state(draft, prompt + list(cand.token_ids)[: len(cand.token_ids) - offset]).numpy()
            assert np.abs(cand.state - expected).max() < STATE_TOL
        else:
            assert cand.state is None
