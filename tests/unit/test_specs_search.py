"""The SPECS search logic, checked exactly on scripted models."""

from __future__ import annotations

import math
import threading
import time
from collections import Counter

import pytest

from tests.helpers.scripted import FakeClock, OtherTokenizerLM, ScriptedLM, ScriptedReward
from specs_engine import Budget, ConfigError, ModelCallError, RewardError, SpecsConfig, SpecsEngine
from specs_engine.search.clock import RunClock
from specs_engine.search.specs import run_specs
from specs_engine.verification import log_ratio, sample_children, soft_score, survivors

ANSWERS = ["ans=1", "ans=2", "ans=3", "ans=4"]


def engine_with(draft_menu, target_menu, rewards, draft_lp=None, target_lp=None, **kw):
    draft = ScriptedLM("draft", draft_menu, draft_lp or {}, **kw.pop("draft_kw", {}))
    target = ScriptedLM("target", target_menu, target_lp or {}, **kw.pop("target_kw", {}))
    reward = ScriptedReward(rewards, default=kw.pop("default_reward", 0.5))
    return SpecsEngine(draft, target, reward, **kw), draft, target, reward


def test_scoring_rule_is_beta_reward_plus_summed_log_ratio():
    assert log_ratio([-1.0, -2.0], [-1.5, -1.5]) == pytest.approx(0.0)
    assert log_ratio([-1.0, -1.0], [-2.0, -2.0]) == pytest.approx(2.0)
    assert log_ratio([-1.0, -1.0], [-2.0, -2.0], "mean") == pytest.approx(1.0)
    assert soft_score(reward=0.5, ratio=-1.0, beta=4.0) == pytest.approx(1.0)
    assert survivors([0.1, -3.0, 2.0], accept_threshold=0.0) == [0, 2]


def test_generation_starts_with_the_target():
    engine, draft, target, _ = engine_with(lambda i: ["d\n\n"], lambda i: ["t\n\n"], {"t\n\n": 0.9})
    result = engine.generate("q", budget=Budget(max_steps=1))
    assert [s.source for s in result.steps] == ["target"]
    assert draft.propose_calls == 0 and result.budget_exhausted and result.stop_reason == "max_steps"


def test_start_draft_lets_the_draft_write_the_first_step_and_a_rejection_still_defers():
    engine, draft, target, _ = engine_with(lambda i: ["d\n\n"], lambda i: ["t\n\n"], {"t\n\n": 0.9, "d\n\n": 0.9})
    result = engine.generate("q", config=SpecsConfig(start="draft", accept_threshold=0.0), budget=Budget(max_steps=2))
    assert [s.source for s in result.steps] == ["draft", "draft"] and target.propose_calls == 0
    engine, _, target, _ = engine_with(lambda i: ["d\n\n"], lambda i: ["t\n\n"], {"t\n\n": 0.9, "d\n\n": 0.0})
    result = engine.generate("q", config=SpecsConfig(start="draft", accept_threshold=50.0), budget=Budget(max_steps=1))
    assert [s.source for s in result.steps] == ["target"] and result.stats.draft_rounds_rejected == 1


def test_an_unknown_start_is_refused_naming_the_choices():
    with pytest.raises(ConfigError, match="start='beam' is not allowed: start must be one of target, draft"):
        SpecsConfig(start="beam")


def test_target_candidates_sets_the_target_rounds_width_and_leaves_the_draft_rounds_at_n():
    engine, draft, target, _ = engine_with(lambda i: ["d\n\n"], lambda i: ["t\n\n"], {"t\n\n": 0.9, "d\n\n": 0.9})
    config = SpecsConfig(n=4, beam_width=2, target_candidates=1, accept_threshold=0.0)
    result = engine.generate("q", config=config, budget=Budget(max_steps=2))
    assert target.candidates_asked == [1]  # 1 for the root
    assert draft.candidates_asked == [4]  # then n over the one beam it left
    assert [s.source for s in result.steps] == ["target", "draft"]
    engine, _, target, _ = engine_with(lambda i: ["d\n\n"], lambda i: ["t\n\n"], {"t\n\n": 0.9})
    engine.generate("q", config=SpecsConfig(n=4), budget=Budget(max_steps=1))
    assert target.candidates_asked == [4]  # None: the paper's n


def test_target_candidates_below_one_is_refused_by_name():
    with pytest.raises(ConfigError, match="target_candidates=0 is not allowed: target_candidates must be an integer >= 1 or None"):
        SpecsConfig(target_candidates=0)


def test_low_target_reward_keeps_target_mode():
    engine, draft, _, _ = engine_with(lambda i: ["d\n\n"], lambda i: ["t\n\n"], {"t\n\n": 0.3})
    result = engine.generate("q", config=SpecsConfig(tau=0.5), budget=Budget(max_steps=4))
    assert [s.source for s in result.steps] == ["target"] * 4
    assert draft.propose_calls == 0


def test_accepted_draft_steps_keep_draft_mode():
    engine, _, target, _ = engine_with(
        lambda i: ["d\n\n"], lambda i: ["t\n\n"], {"t\n\n": 0.9, "d\n\n": 0.9}
    )
    result = engine.generate("q", config=SpecsConfig(accept_threshold=0.0), budget=Budget(max_steps=4))
    assert [s.source for s in result.steps] == ["target", "draft", "draft", "draft"]
    assert target.propose_calls == 1
    assert result.stats.steps_from_draft == 3 and result.stats.steps_from_target == 1
    draft_step = result.steps[1]
    assert draft_step.score == pytest.approx(SpecsConfig.beta * 0.9 + draft_step.log_ratio)


def test_rejected_draft_round_defers_to_target_then_switches_back():
    clock = FakeClock()
    draft_menu = lambda i: ["bad\n\n"] if i == 1 else ["good\n\n"]  # noqa: E731
    engine, draft, target, _ = engine_with(
        draft_menu, lambda i: ["t\n\n"], {"t\n\n": 0.9, "good\n\n": 0.9, "bad\n\n": 0.9},
        target_lp={"bad\n\n": -9.0, "good\n\n": -0.5},
        draft_kw=dict(clock=clock, propose_cost=0.25),
        target_kw=dict(clock=clock, propose_cost=1.0),
        clock=clock,
    )
    config = SpecsConfig(accept_threshold=0.0)
    result = engine.generate("q", config=config, budget=Budget(max_steps=3))
    assert [s.source for s in result.steps] == ["target", "target", "draft"]
    assert result.stats.draft_rounds == 2 and result.stats.draft_rounds_rejected == 1
    assert result.stats.draft_s == pytest.approx(0.5)  # the rejected round's time is kept
    assert result.stats.target_rounds == 2


def test_rejected_candidates_never_reach_the_final_pool():
    # ans=4 has the best reward but a target log-prob far below the draft's: rejected.
    engine, _, _, _ = engine_with(
        lambda i: ANSWERS, lambda i: ["t\n\n"], {"t\n\n": 0.9, "ans=4": 1.0},
        target_lp={"ans=4": -20.0}, draft_kw=dict(in_order=False), default_reward=0.1,
    )
    config = SpecsConfig(n=4, beam_width=2, accept_threshold=-5.0)
    for seed in range(40):
        result = engine.generate("q", config=config.with_overrides(seed=seed))
        assert result.answer != "4"
        assert result.finished


def test_selection_frequencies_follow_softmax_of_scores():
    """Chi-square test: the chosen child's frequencies match softmax(beta*r + log_ratio)."""
    draft_lp = {a: -1.0 for a in ANSWERS}
    target_lp = {"ans=1": -1.0, "ans=2": -1.2, "ans=3": -0.8, "ans=4": -1.0}
    rewards = {"t\n\n": 0.9, "ans=1": 0.2, "ans=2": 0.8, "ans=3": 0.5, "ans=4": 0.9}
    engine, _, _, _ = engine_with(lambda i: ANSWERS, lambda i: ["t\n\n"], rewards, draft_lp, target_lp)
    beta = 2.0
    scores = [beta * rewards[a] + 5 * (target_lp[a] - draft_lp[a]) for a in ANSWERS]
    weights = [math.exp(s) for s in scores]
    expected = [w / sum(weights) for w in weights]
    runs = 2000
    config = SpecsConfig(n=4, beam_width=4, beta=beta, accept_threshold=-math.inf)
    counts = Counter(
        engine.generate("q", config=config.with_overrides(seed=s)).answer for s in range(runs)
    )
    chi2 = sum((counts[str(i + 1)] - runs * p) ** 2 / (runs * p) for i, p in enumerate(expected))
    assert chi2 < 16.27, (counts, expected)  # df=3, p=0.001


def test_selection_temperature_sharpens_the_choice():
    picks = Counter()
    import random

    rng = random.Random(0)
    for _ in range(500):
        picks[sample_children([0.0, 1.0], 1, temperature=0.05, rng=rng)[0]] += 1
    assert picks[1] == 500


def prepared(engine: SpecsEngine, method: str, config: SpecsConfig, budget: Budget):
    """The run a call would start with, for a test that drives a strategy by hand."""
    timer = RunClock(engine.clock, None, budget.latency_s)
    return engine._prepare("q", method, config, budget, "target", None, None, None, timer=timer)


def test_beams_keep_different_histories():
    target_menu = lambda i: ["a\n\n", "b\n\n", "c\n\n", "d\n\n"]  # noqa: E731
    rewards = {"a\n\n": 0.9, "b\n\n": 0.8, "c\n\n": 0.2, "d\n\n": 0.1}
    engine, _, _, _ = engine_with(target_menu, target_menu, rewards)
    config = SpecsConfig(n=4, beam_width=2, seed=0, accept_threshold=-math.inf)
    run = prepared(engine, "specs", config, Budget(max_steps=2))
    beams = run_specs(run)
    assert len(beams) == 2
    assert beams[0].texts()[0] != beams[1].texts()[0] or beams[0].texts() != beams[1].texts()
    assert {b.texts()[0] for b in beams} == {"a\n\n", "b\n\n"}  # target round keeps the top 2


def test_weighted_vote_and_last_reward_rank_completed_beams_differently():
    menu = lambda i: ["x=7", "y=7", "z=7", "w=9"]  # noqa: E731
    rewards = {"x=7": 0.5, "y=7": 0.5, "z=7": 0.5, "w=9": 0.9}
    engine, _, _, _ = engine_with(menu, menu, rewards)
    config = SpecsConfig(n=4, beam_width=1, seed=0)
    assert engine.generate("q", "beam_search", config).answer == "9"
    voted = config.with_overrides(final_selection="weighted_vote")
    assert engine.generate("q", "beam_search", voted).answer == "7"


def test_fixed_seed_gives_the_same_result_twice():
    engine, _, _, _ = engine_with(
        lambda i: ANSWERS if i else ["s\n\n"], lambda i: ["t\n\n"], {"t\n\n": 0.9},
        draft_kw=dict(in_order=False),
    )
    config = SpecsConfig(n=4, beam_width=2, seed=7, accept_threshold=-math.inf)
    first, second = (engine.generate("q", config=config) for _ in range(2))
    strip = lambda r: [(s.text, s.source, s.reward, s.score) for s in r.steps]  # noqa: E731
    assert first.text == second.text and strip(first) == strip(second)
    texts = {engine.generate("q", config=config.with_overrides(seed=s)).text for s in range(20)}
    assert len(texts) > 1  # and the seed really matters


def test_deadline_is_met_on_a_fake_clock_and_the_end_is_drafted():
    clock = FakeClock()
    engine, _, _, _ = engine_with(
        lambda i: ["d\n\n"], lambda i: ["t\n\n"], {"t\n\n": 0.3, "d\n\n": 0.3},
        draft_kw=dict(clock=clock, propose_cost=0.01),
        target_kw=dict(clock=clock, propose_cost=0.3, score_cost=0.02),
        clock=clock,
    )
    result = engine.generate("q", budget=Budget(latency_s=1.0, max_steps=1000))
    assert result.budget_exhausted and result.stop_reason == "latency"
    assert result.stats.wall_s <= 1.0 + 1e-9
    sources = [s.source for s in result.steps]
    assert sources[:3] == ["target"] * 3 and set(sources[3:]) == {"draft"}
    assert result.text  # the best answer so far, not an empty one


def test_a_beam_near_max_new_tokens_does_not_cut_the_others_steps():
    menu = lambda i: ["aaaaaaaaaa\n\n", "b\n\n"] if i == 0 else ["cccccc\n\n"]  # noqa: E731
    engine, _, target, _ = engine_with(menu, menu, {})
    run = prepared(engine, "beam_search", SpecsConfig(n=2, beam_width=1), Budget(max_new_tokens=16))
    beams = [run.accept(p, 0.5) for p in run.propose("target", [run.root], 2)]
    long_beam, short_beam = run.propose("target", beams, 1)
    assert long_beam.candidate.text == "cccc" and long_beam.candidate.finish_reason == "length"
    assert short_beam.candidate.text == "cccccc\n\n"  # its own room, not the long beam's
    assert target.propose_calls == 3  # one call per distinct room


def test_the_smaller_context_window_ends_a_beam_whichever_model_wrote_it():
    engine, _, _, _ = engine_with(
        lambda i: ["dddd\n\n"], lambda i: ["tttt\n\n"], {},
        draft_kw=dict(context_window=20), target_kw=dict(context_window=1000),
    )
    result = engine.generate("q", config=SpecsConfig(tau=1.0), budget=Budget(max_steps=10))
    assert {s.source for s in result.steps} == {"target"}  # tau=1: the draft never proposes
    assert result.stop_reason == "context" and len(result.steps) == 3  # the draft could not read a 4th


def test_max_new_tokens_ends_beams():
    engine, _, _, _ = engine_with(lambda i: ["dddd\n\n"], lambda i: ["tttt\n\n"], {})
    result = engine.generate("q", budget=Budget(max_new_tokens=13))
    # two full 6-token steps, then the last step gets only the 1 token left: exactly 13
    assert [s.tokens for s in result.steps] == [6, 6, 1]
    assert result.stats.completion_tokens == 13
    assert result.budget_exhausted and result.stop_reason == "max_new_tokens"


def test_model_failure_names_role_model_and_step():
    engine, _, _, _ = engine_with(
        lambda i: ["d\n\n"], lambda i: ["t\n\n"], {}, target_kw=dict(fail_at_call=3)
    )
    with pytest.raises(ModelCallError, match=r"target model 'target' failed at step 3: RuntimeError"):
        engine.generate("q", config=SpecsConfig(tau=1.0), budget=Budget(max_steps=5))


class NanReward:
    name = "nan-prm"

    def score(self, question, solutions):
        return [float("nan")] * len(solutions)


def test_nan_reward_is_an_error_naming_the_reward_model_and_step():
    draft = ScriptedLM("draft", lambda i: ["d\n\n"])
    engine = SpecsEngine(draft, ScriptedLM("target", lambda i: ["t\n\n"]), NanReward())
    with pytest.raises(RewardError, match=r"reward model 'nan-prm' failed at step 1.*nan"):
        engine.generate("q")


def test_weighted_vote_refuses_negative_rewards_at_the_first_step():
    engine, _, target, _ = engine_with(lambda i: ["d\n\n"], lambda i: ["t\n\n"], {"t\n\n": -1.5})
    with pytest.raises(RewardError, match=r"failed at step 1.*weighted_vote.*>= 0"):
        engine.generate("q", config=SpecsConfig(final_selection="weighted_vote"))
    assert target.propose_calls == 1
    assert engine.generate("q", budget=Budget(max_steps=2)).steps  # last_reward ranks any sign


def test_different_tokenizers_use_text_unless_ids_are_forced():
    """The target's tokenizer maps every text to other ids than the draft's: the target
    must receive the draft's steps re-encoded from text (draft ids would be refused)."""
    draft = ScriptedLM("draft", lambda i: ["d\n\n"], fingerprint="a")
    target = OtherTokenizerLM("target", lambda i: ["t\n\n"], {"d\n\n": -0.2}, fingerprint="b")
    assert draft.encode("d\n\n") != target.encode("d\n\n")
    engine = SpecsEngine(draft, target, ScriptedReward({"t\n\n": 0.9, "d\n\n": 0.9}))
    result = engine.generate("q", config=SpecsConfig(n=1, beam_width=1, accept_threshold=-1.0),
                             budget=Budget(max_steps=3))
    assert [s.source for s in result.steps] == ["target", "draft", "draft"]
    assert target.scored == ["d\n\n", "d\n\n"]  # each draft step, as the target's own tokens
    # the target's log-prob of the re-encoded text: 3 tokens at -0.2 against the draft's -0.5
    assert result.steps[1].log_ratio == pytest.approx(3 * (-0.2 + 0.5))
    with pytest.raises(Exception, match="token_passing='ids' needs one tokenizer"):
        engine.generate("q", config=SpecsConfig(token_passing="ids"))


def test_round_cut_by_the_deadline_is_salvaged_without_scoring():
    """A first target round that outlives the budget returns its likeliest candidate at
    once: scoring it would only add to the overrun."""
    clock = FakeClock()
    engine, _, _, reward = engine_with(
        lambda i: ["d\n\n"], lambda i: ["long step\n\n", "x\n\n"], {},
        target_lp={"long step\n\n": -0.1, "x\n\n": -3.0},
        target_kw=dict(clock=clock, propose_cost=1.5), clock=clock,
    )
    result = engine.generate("q", config=SpecsConfig(n=2, beam_width=2), budget=Budget(latency_s=1.0))
    assert result.text == "long step\n\n" and result.steps[0].reward is None
    assert result.budget_exhausted and result.stop_reason == "latency"
    assert reward.calls == 0


def test_rsd_keeps_draft_steps_with_enough_reward_and_defers_the_rest():
    draft_menu = lambda i: ["weak\n\n"] if i == 1 else ["fine\n\n"]  # noqa: E731
    engine, _, target, _ = engine_with(
        draft_menu, lambda i: ["t\n\n"], {"fine\n\n": 0.8, "weak\n\n": 0.2, "t\n\n": 0.9}
    )
    result = engine.generate("q", "rsd", SpecsConfig(rsd_threshold=0.5), Budget(max_steps=3))
    assert [s.source for s in result.steps] == ["draft", "target", "draft"]
    assert result.stats.draft_rounds_rejected == 1 and target.propose_calls == 1


def test_best_of_n_returns_the_best_rewarded_sample_and_scores_only_at_the_end():
    menu = lambda i: ["x=1", "x=2", "x=3", "x=4"]  # noqa: E731
    engine, _, _, reward = engine_with(menu, menu, {"x=1": 0.1, "x=2": 0.7, "x=3": 0.4, "x=4": 0.2})
    result = engine.generate("q", "best_of_n", SpecsConfig(n=4, beam_width=1), model="draft")
    assert result.answer == "2" and reward.calls == 1


def test_a_full_context_window_ends_the_beam_and_says_so():
    engine, _, _, _ = engine_with(
        lambda i: ["dddd\n\n"], lambda i: ["tttt\n\n"], {},
        draft_kw=dict(context_window=20), target_kw=dict(context_window=20),
    )
    result = engine.generate("q", budget=Budget(max_steps=10))
    assert result.stop_reason == "context" and not result.budget_exhausted
    assert not result.finished and len(result.steps) == 3


# ---- the budget at the edges -------------------------------------------------------------

def test_a_deferred_step_that_no_longer_fits_is_finished_cheaply_by_the_draft():
    clock = FakeClock()
    engine, _, target, _ = engine_with(
        lambda i: ["d\n\n"], lambda i: ["t\n\n"], {"t\n\n": 0.9, "d\n\n": 0.9},
        draft_kw=dict(clock=clock, propose_cost=0.01),
        target_kw=dict(clock=clock, propose_cost=0.3),
        clock=clock,
    )
    config = SpecsConfig(accept_threshold=100.0)  # every draft round is deferred
    result = engine.generate("q", config=config, budget=Budget(latency_s=1.0, max_steps=1000))
    # target rounds end at 0.3, 0.61, 0.92; the round deferred after that would end at 1.23
    assert target.propose_calls == 3 and result.stats.wall_s <= 1.0 + 1e-9
    assert result.budget_exhausted and result.stop_reason == "latency"


def _near_the_deadline(draft_menu):
    """SPECS whose verify (2 s) costs far more than a draft step (0.3 s): after a target
    round (1 s) and an accepted draft round (2.3 s), 1.7 s of the 5 s budget are left:
    too little for another draft round, so the draft finishes cheaply."""
    clock = FakeClock()
    engine, draft, target, reward = engine_with(
        draft_menu, lambda i: ["t\n\n"], {"t\n\n": 0.9},
        draft_kw=dict(clock=clock, propose_cost=0.3, cut_at_deadline=True),
        target_kw=dict(clock=clock, propose_cost=1.0, score_cost=2.0, cut_at_deadline=True),
        clock=clock,
    )
    config = SpecsConfig(n=1, beam_width=1, accept_threshold=-100.0)
    return engine.generate("q", config=config, budget=Budget(latency_s=5.0, max_steps=1000))


def test_a_cheap_finishing_step_gets_the_time_left_not_a_verifys_reserve():
    """The cheap step is scored by the reward alone: reserving a verify (2 s) for it
    left its decode no time, and SPECS wrote one-token steps until max_steps."""
    result = _near_the_deadline(lambda i: ["d\n\n"] if i < 2 else ["#### 7"])
    assert [s.source for s in result.steps] == ["target", "draft", "draft"]
    assert result.answer == "7" and result.stop_reason == "finished"
    assert result.stats.wall_s <= 5.0 + 1e-9


def test_cheap_steps_that_never_finish_stop_on_time_every_step_whole():
    result = _near_the_deadline(lambda i: ["d\n\n"])
    assert result.stop_reason == "latency" and result.budget_exhausted
    assert result.stats.wall_s <= 5.0 + 1e-9
    assert len(result.steps) > 3 and {s.text for s in result.steps} == {"t\n\n", "d\n\n"}


class SlowingDraft(ScriptedLM):
    """Its first proposal costs 0.3 s, every later one 1.5 s."""

    def propose(self, prefixes, num_candidates, params):
        self.propose_cost = 0.3 if self.propose_calls == 0 else 1.5
        return super().propose(prefixes, num_candidates, params)


def test_a_decode_cut_by_its_deadline_is_salvaged_not_verified():
    """The second draft round must end by 6 - 2 (the verify's cost) = 4.0 s but needs 1.5 s
    from 3.3: its decode is cut at 4.0, the round salvaged and the search stopped there,
    instead of verifying fragments until the deadline."""
    clock = FakeClock()
    draft = SlowingDraft("draft", lambda i: ["d\n\n"], clock=clock, cut_at_deadline=True)
    target = ScriptedLM("target", lambda i: ["t\n\n"], clock=clock, propose_cost=1.0, score_cost=2.0)
    engine = SpecsEngine(draft, target, ScriptedReward({"t\n\n": 0.9}), clock=clock)
    result = engine.generate("q", config=SpecsConfig(n=1, beam_width=1, accept_threshold=-100.0),
                             budget=Budget(latency_s=6.0, max_steps=1000))
    assert [s.text for s in result.steps] == ["t\n\n", "d\n\n", "d"]
    assert result.steps[-1].reward is None and target.score_calls == 1
    assert result.stop_reason == "latency" and result.stats.wall_s == pytest.approx(4.0)


def test_beams_that_all_complete_on_the_last_allowed_step_have_finished():
    engine, _, _, _ = engine_with(lambda i: ["a\n\n"] if i == 0 else ["#### 7"], lambda i: ["t\n\n"], {})
    result = engine.generate("q", "greedy", budget=Budget(max_steps=2), model="draft")
    assert result.answer == "7" and result.finished
    assert result.stop_reason == "finished" and not result.budget_exhausted


def test_best_of_n_cut_by_the_budget_keeps_its_best_sample():
    clock = FakeClock()
    first = {"x=1\n\n": 0.1, "x=2\n\n": 0.8, "x=3\n\n": 0.4, "x=4\n\n": 0.2}
    menu = lambda i: list(first) if i == 0 else ["y\n\n"]  # noqa: E731
    engine, draft, _, _ = engine_with(
        menu, menu, lambda question, steps: first[steps[0]],
        draft_kw=dict(clock=clock, propose_cost=0.4), clock=clock,
    )
    result = engine.generate("q", "best_of_n", SpecsConfig(n=4, beam_width=1),
                             Budget(latency_s=1.0, max_steps=100), model="draft")
    assert result.text.startswith("x=2") and result.budget_exhausted


class SlowScoringLM(ScriptedLM):
    """A target whose scoring takes real time, to see whether a round waits for it."""

    def score(self, prefixes, continuations, *, deadline=None):
        time.sleep(0.2)
        self.scored_at = time.monotonic()  # set only once scoring is done
        return super().score(prefixes, continuations, deadline=deadline)


def test_a_failed_reward_call_waits_for_the_concurrent_target_scoring():
    target = SlowScoringLM("target", lambda i: ["t\n\n"])
    engine = SpecsEngine(ScriptedLM("draft", lambda i: ["d\n\n"]), target, NanReward())
    run = prepared(engine, "specs", SpecsConfig(), Budget(max_steps=3))
    with pytest.raises(RewardError):
        run.verify(run.propose("draft", run.beams, 2))
    assert getattr(target, "scored_at", None) is not None  # its stats were written before the error


def test_target_scoring_overlaps_reward_scoring():
    reward_started = threading.Event()

    class WaitingTarget(ScriptedLM):
        def score(self, prefixes, continuations, *, deadline=None):
            if not reward_started.wait(timeout=5):  # only a concurrent reward call can set it
                raise AssertionError("the reward did not run while the target was scoring")
            return super().score(prefixes, continuations, deadline=deadline)

    class SignallingReward(ScriptedReward):
        def score(self, question, solutions):
            reward_started.set()
            return super().score(question, solutions)

    engine = SpecsEngine(ScriptedLM("draft", lambda i: ["d\n\n"]),
                         WaitingTarget("target", lambda i: ["t\n\n"]), SignallingReward(0.9))
    run = prepared(engine, "specs", SpecsConfig(), Budget(max_steps=3))
    ratios, rewards = run.verify(run.propose("draft", run.beams, 2))
    assert len(ratios) == len(rewards) == 2
