"""StepTokenPRM and SequenceClassifierReward read each solution over cached prefixes
(backends/hf/prefix_reuse.py): same rewards as one uncached padded batch, fewer tokens fed."""

from __future__ import annotations

import pytest
import torch

from specs_engine.rewards import SequenceClassifierReward, StepTokenPRM, format_solution, load_reward_model
from specs_engine.backends.hf import prefix_reuse

QUESTION = "Ann has 3 apples and buys 4 more. How many apples?"
STEPS = ["Ann starts with 3 apples.", "Then 3 + 4 = 7.", "The answer is \\boxed{7}."]
CANDIDATES = ["Then 3 + 4 = 7.", "Then 3 + 4 = 8.", "She buys 4 more apples.", "So 7 apples."]


def close(a, b, tol=1e-4) -> bool:
    return len(a) == len(b) and all(abs(x - y) <= tol for x, y in zip(a, b))


# The adapters' previous, uncached implementations: one padded batch per call.

def uncached_step_prm(prm: StepTokenPRM, question, solutions) -> list[float]:
    texts = [prm.text(question, steps) for steps in solutions]
    batch = prm.tokenizer(texts, padding=True, add_special_tokens=False, return_tensors="pt")
    with torch.inference_mode():
        good = prm.model(**batch).logits.float().softmax(dim=-1)[..., 1]
    is_step = (batch["input_ids"] == prm.step_token_id) & batch["attention_mask"].bool()
    positions = torch.arange(is_step.shape[1])
    last = torch.where(is_step, positions, -1).max(dim=1).values
    return good[torch.arange(len(texts)), last].tolist()


def uncached_classifier(reward: SequenceClassifierReward, question, solutions) -> list[float]:
    texts = [format_solution(question, steps) for steps in solutions]
    batch = reward.tokenizer(texts, padding=True, return_tensors="pt")
    with torch.inference_mode():
        logits = reward.model(**batch).logits.float()
    if logits.shape[-1] == 2:
        return logits.softmax(dim=-1)[:, 1].tolist()
    return (logits[:, 0].sigmoid() if reward.sigmoid else logits[:, 0]).tolist()


@pytest.fixture
def step_prm(tiny_step_prm_dir):
    loaded = load_reward_model(tiny_step_prm_dir, dtype="float32")
    return StepTokenPRM(loaded.model, loaded.tokenizer)  # fresh: its own, empty prefix cache


@pytest.fixture(params=[1, 2], ids=["one_label", "two_labels"])
def classifier(request, tiny_seq_classifier_dir, tmp_path_factory):
    if request.param == 1:
        location = tiny_seq_classifier_dir
    else:
        from tests.helpers.tiny_models import build_sequence_classifier

        location = build_sequence_classifier(tmp_path_factory.mktemp("seqcls2"), num_labels=2)
    loaded = load_reward_model(location, dtype="float32")
    return SequenceClassifierReward(loaded.model, loaded.tokenizer)


def prm_ids(prm: StepTokenPRM, steps) -> list[int]:
    text = prm.text(QUESTION, steps)
    return prm._through_last_step(prm.tokenizer(text, add_special_tokens=False)["input_ids"])


def classifier_ids(reward: SequenceClassifierReward, steps) -> list[int]:
    return reward._through_last_real_token(reward.tokenizer(format_solution(QUESTION, steps))["input_ids"])


def check_search_steps(reward, uncached, encode, seam: int) -> None:
    """Steps 1, 2, 3 scored as a search does: equal to the uncached path, and the last call
    feeds only the new step (plus `seam` tokens BPE may re-merge where steps join)."""
    for k in (1, 2, 3):
        before = reward.reuse.fed_tokens
        assert close(reward.score(QUESTION, [STEPS[:k]]), uncached(reward, QUESTION, [STEPS[:k]]))
    assert reward.reuse.cached is True
    fed = reward.reuse.fed_tokens - before
    full, previous = len(encode(reward, STEPS)), len(encode(reward, STEPS[:2]))
    assert full - previous <= fed <= full - previous + seam < full


def test_step_prm_search_steps_equal_uncached_and_feed_only_the_new_step(step_prm):
    check_search_steps(step_prm, uncached_step_prm, prm_ids, seam=0)


def test_classifier_search_steps_equal_uncached_and_feed_only_the_new_step(classifier):
    check_search_steps(classifier, uncached_classifier, classifier_ids, seam=2)


def test_sigmoid_classifier_equals_uncached(tiny_seq_classifier_dir):
    loaded = load_reward_model(tiny_seq_classifier_dir, dtype="float32")
    reward = SequenceClassifierReward(loaded.model, loaded.tokenizer, sigmoid=True)
    for k in (1, 2, 3):
        assert close(reward.score(QUESTION, [STEPS[:k]]), uncached_classifier(reward, QUESTION, [STEPS[:k]]))


@pytest.mark.parametrize("kind", ["step_prm", "classifier"])
def test_candidates_sharing_a_prefix_score_each_like_uncached(kind, step_prm, tiny_seq_classifier_dir):
    if kind == "step_prm":
        reward, uncached, ids = step_prm, uncached_step_prm, prm_ids
    else:
        loaded = load_reward_model(tiny_seq_classifier_dir, dtype="float32")
        reward = SequenceClassifierReward(loaded.model, loaded.tokenizer)
        uncached, ids = uncached_classifier, classifier_ids
    reward.score(QUESTION, [STEPS[:1]])
    solutions = [STEPS[:1] + [c] for c in CANDIDATES] + [["A different start."], STEPS]
    before = reward.reuse.fed_tokens
    rewards = reward.score(QUESTION, solutions)
    expected = uncached(reward, QUESTION, solutions)
    assert close(rewards, expected)
    assert len(set(round(r, 6) for r in rewards)) > 1, "different solutions, different rewards"
    assert reward.reuse.fed_tokens - before < sum(len(ids(reward, s)) for s in solutions) // 2
    # Each alone, in a fresh adapter (nothing cached), gives the same again.
    fresh = type(reward)(reward.model, reward.tokenizer)
    assert close([fresh.score(QUESTION, [s])[0] for s in solutions], expected)


def test_rescoring_the_same_solution_feeds_nothing(step_prm):
    first = step_prm.score(QUESTION, [STEPS])
    before = step_prm.reuse.fed_tokens
    assert step_prm.score(QUESTION, [STEPS]) == first
    assert step_prm.reuse.fed_tokens == before


def test_classifier_skips_a_trailing_pad_token_like_a_padded_batch(tiny_seq_classifier_dir):
    loaded = load_reward_model(tiny_seq_classifier_dir, dtype="float32")
    reward = SequenceClassifierReward(loaded.model, loaded.tokenizer)
    ending = [STEPS[:1], STEPS[:2] + ["Done.<|endoftext|>"]]  # the tiny tokenizer's pad is its EOS
    assert classifier_ids(reward, ending[1])[-1] != reward.model.config.pad_token_id
    assert close(reward.score(QUESTION, ending), uncached_classifier(reward, QUESTION, ending))


def test_a_cache_that_cannot_be_cut_falls_back_to_one_padded_batch(step_prm, monkeypatch):
    calls = []

    def refuse(cache):
        calls.append(cache)
        raise NotImplementedError("sliding-window layers")

    monkeypatch.setattr(prefix_reuse, "kv_of", refuse)
    solutions = [STEPS[:1], STEPS[:2], STEPS]
    for _ in range(2):
        before = step_prm.reuse.fed_tokens
        assert close(step_prm.score(QUESTION, solutions), uncached_step_prm(step_prm, QUESTION, solutions))
        assert step_prm.reuse.cached is False
    assert len(calls) == 1, "decided once, then remembered"
    assert step_prm.reuse.fed_tokens - before == sum(len(prm_ids(step_prm, s)) for s in solutions)


class _IgnoresCache(torch.nn.Module):
    """A classifier that takes past_key_values but never fills it."""

    def __init__(self, model):
        super().__init__()
        self.inner, self.config = model, model.config

    @property
    def device(self):
        return self.inner.device

    def forward(self, input_ids, attention_mask=None, **kwargs):
        return self.inner(input_ids=input_ids, attention_mask=attention_mask)


class _NoCacheArgument(_IgnoresCache):
    def forward(self, input_ids, attention_mask=None):
        return self.inner(input_ids=input_ids, attention_mask=attention_mask)


@pytest.mark.parametrize("wrapper", [_IgnoresCache, _NoCacheArgument])
def test_a_model_that_does_not_use_the_cache_runs_uncached(wrapper, tiny_seq_classifier_dir):
    loaded = load_reward_model(tiny_seq_classifier_dir, dtype="float32")
    reward = SequenceClassifierReward(wrapper(loaded.model), loaded.tokenizer)
    if wrapper is _NoCacheArgument:
        assert reward.reuse.cached is False  # known before any call
    for k in (1, 2, 3):
        assert close(reward.score(QUESTION, [STEPS[:k]]), uncached_classifier(reward, QUESTION, [STEPS[:k]]))
        assert reward.reuse.cached is False
