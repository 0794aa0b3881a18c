"""Every method end to end on tiny real transformers models (the real code path)."""

from __future__ import annotations

import math

import pytest

from specs_engine import (
    Budget, ConfigError, FinalEvent, ModelCallError, RewardError, SpecsConfig, SpecsEngine,
)

QUESTION = "Ann has 3 apples and buys 4 more. How many apples does Ann have?"
METHOD_ROLES = [("specs", "target"), ("rsd", "target"), ("beam_search", "target"),
                ("beam_search", "draft"), ("best_of_n", "draft"), ("greedy", "target")]


@pytest.fixture(scope="module")
def engine(tiny_draft_dir, tiny_target_dir, tiny_reward_dir):
    return SpecsEngine.from_pretrained(draft=str(tiny_draft_dir), target=str(tiny_target_dir),
                                       reward=str(tiny_reward_dir), dtype="float32")


@pytest.mark.parametrize("method, model", METHOD_ROLES)
def test_every_method_runs_and_reports(engine, method, model):
    # tau=0: after the first target round the search switches to the draft; threshold -inf:
    # every draft round is accepted. max_new_tokens leaves room for 4 steps of up to 64 tokens.
    config = SpecsConfig(n=4, beam_width=2, seed=3, accept_threshold=-math.inf, tau=0.0)
    result = engine.generate(QUESTION, method, config, Budget(max_steps=4), model=model)
    assert result.steps and result.text == "".join(s.text for s in result.steps)
    stats = result.stats
    assert stats.steps_from_draft + stats.steps_from_target == len(result.steps)
    assert stats.wall_s > 0 and 0 <= stats.overhead_s < stats.wall_s
    if method == "specs":
        assert [s.source for s in result.steps][:2] == ["target", "draft"], result.stop_reason
        assert stats.steps_from_target == 1 and stats.steps_from_draft == len(result.steps) - 1
        assert stats.draft_rounds >= 1 and stats.draft_rounds_rejected == 0
        assert stats.target_scored_tokens >= sum(s.tokens for s in result.steps[1:])
    if model == "draft" and method != "specs":
        assert stats.target_tokens == 0 and stats.target_s == 0


def test_chat_messages_and_stream_equal_the_result(engine):
    prompt = [{"role": "user", "content": QUESTION}]
    events = list(engine.stream(prompt, config=SpecsConfig(seed=1), budget=Budget(max_steps=4)))
    final = events[-1]
    assert isinstance(final, FinalEvent)
    assert "".join(e.step.text for e in events[:-1]) + final.delta == final.result.text


def test_fixed_seed_repeats_on_real_models(engine):
    config = SpecsConfig(n=4, beam_width=2, seed=11)
    first, second = (engine.generate(QUESTION, config=config, budget=Budget(max_steps=4)) for _ in range(2))
    assert first.text == second.text


def test_other_tokenizer_goes_through_text_unless_ids_are_forced(
    tiny_draft_dir, tiny_other_tokenizer_dir, tiny_reward_dir, monkeypatch
):
    """The target (a Llama with its own tokenizer) must score each draft step re-encoded
    from its text with its own tokenizer, not the draft's token ids."""
    engine = SpecsEngine.from_pretrained(draft=str(tiny_draft_dir), target=str(tiny_other_tokenizer_dir),
                                         reward=str(tiny_reward_dir), dtype="float32")
    scored: list[list[int]] = []
    real_score = engine.target.score

    def recording_score(prefixes, continuations, **kwargs):
        scored.extend(list(c) for c in continuations)
        return real_score(prefixes, continuations, **kwargs)

    monkeypatch.setattr(engine.target, "score", recording_score)
    config = SpecsConfig(n=1, beam_width=1, seed=0, accept_threshold=-math.inf, tau=0.0)
    result = engine.generate(QUESTION, config=config, budget=Budget(max_steps=3))
    drafted = [s.text for s in result.steps if s.source == "draft"]
    assert drafted, [s.source for s in result.steps]
    for text in drafted:
        own, foreign = engine.target.encode(text), engine.draft.encode(text)
        assert own != foreign  # the two tokenizers really disagree on this step
        assert own in scored and foreign not in scored
    with pytest.raises(ConfigError, match="token_passing='ids' needs one tokenizer"):
        engine.generate(QUESTION, config=SpecsConfig(token_passing="ids"))


def test_reward_callable_that_raises_names_the_reward_and_step(engine):
    def broken(question, steps):
        raise ValueError("no score today")

    bad = SpecsEngine(engine.draft, engine.target, broken)
    with pytest.raises(RewardError, match=r"reward model 'broken' failed at step 1: ValueError: no score today"):
        bad.generate(QUESTION)


def test_target_failing_mid_search_names_model_and_step(engine, monkeypatch):
    calls = []

    def failing_score(*args, **kwargs):
        calls.append(1)
        raise RuntimeError("device lost")

    monkeypatch.setattr(engine.target, "score", failing_score)
    config = SpecsConfig(tau=0.0, seed=0)
    with pytest.raises(ModelCallError, match=r"target model .* failed at step 2: RuntimeError: device lost"):
        engine.generate(QUESTION, config=config, budget=Budget(max_steps=4))
    assert calls == [1]  # the first target scoring failed, and nothing retried it


def test_prompt_longer_than_the_context_is_refused(engine):
    with pytest.raises(ConfigError, match=r"prompt is \d+ tokens but the draft model .* accepts at most 2048"):
        engine.generate("apples " * 3000)
