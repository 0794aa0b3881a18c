"""The target probe on scripted models: rewards come from the target's states (its scoring
forward in a draft round, its own proposals in a target round), no reward model runs,
and attaching it adds no target forward; bad heads and unreadable targets are refused."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from dataclasses import dataclass, field, replace

import numpy as np
import pytest

from specs_engine import Budget, ConfigError, SpecsConfig, SpecsEngine
from specs_engine.rewards.target_probe import TargetProbe
from specs_engine.sources import model_identity
from tests.helpers.scripted import FakeClock, ScriptedLM, ScriptedReward

REWARDS = {"t\n\n": 0.9, "good\n\n": 0.8, "bad\n\n": 0.3, "#### 1": 0.7,
           "t\n": 0.6, "good\n": 0.75, "bad\n": 0.2, "#### ": 0.65, "t": 0.4}
"""Each step's reward, and (the keys less their last character) what a probe reading the
state one token earlier finds there."""
HIDDEN = 3


def state_of(text: str) -> np.ndarray:
    """The scripted target's "hidden state" after a step: [logit(reward), 1, 0], so the
    probe w = [1, 0, 0], b = 0 reads back exactly REWARDS[text]."""
    r = REWARDS.get(text, 0.5)
    return np.array([math.log(r / (1 - r)), 1.0, 0.0], dtype=np.float32)


def read_state(ids, offset: int):
    """The scripted state `offset` tokens (characters) before the last of ids; None when
    ids are too short, as the backends answer."""
    return state_of("".join(map(chr, ids[: len(ids) - offset]))) if len(ids) > offset else None


@dataclass
class StatesLM(ScriptedLM):
    """A ScriptedLM whose scoring forward and proposals also give hidden states.
    score_calls counts every scoring forward, with or without states."""

    hidden_size = HIDDEN
    offsets: list = field(default_factory=list)
    """The offset of each score_with_states call and each proposal round with states."""

    def score_with_states(self, prefixes, continuations, *, deadline=None, offset=0):
        self.offsets.append(offset)
        scored = self.score(prefixes, continuations, deadline=deadline)
        return scored, [read_state(c, offset) for c in continuations]

    def propose(self, prefixes, num_candidates, params):
        rows = super().propose(prefixes, num_candidates, params)
        if not params.with_states:
            return rows
        self.offsets.append(params.state_offset)
        return [[replace(c, state=read_state(c.token_ids, params.state_offset)) for c in row] for row in rows]


class CountingProbe(TargetProbe):
    """Counts calls of rewards_at, the probe's own target forward (score() goes through it)."""

    score_calls = 0

    def rewards_at(self, prefixes, steps):
        type(self).score_calls += 1
        return super().rewards_at(prefixes, steps)


def probe_dir(tmp_path, base, weight=(1.0, 0.0, 0.0), bias=0.0, state_offset=0, **meta):
    probe = TargetProbe(np.array(weight), bias, base_model=str(base), state_offset=state_offset)
    return probe.save(tmp_path / "probe", **meta)


@pytest.fixture
def base(tmp_path):
    """A directory standing for the target's weights (what the probe's base_model names)."""
    path = tmp_path / "target-model"
    path.mkdir()
    return path


def roles(clock=None, score_cost=0.0):
    draft_menu = lambda i: ["bad\n\n"] if i == 1 else ["good\n\n"] if i < 3 else ["#### 1"]  # noqa: E731
    kw = dict(clock=clock, score_cost=score_cost, propose_cost=0.1 if clock else 0.0)
    draft = ScriptedLM("draft", draft_menu, {}, **kw)
    target = StatesLM("target", lambda i: ["t\n\n"], {"bad\n\n": -9.0, "good\n\n": -0.5}, **kw)
    return draft, target


def test_probe_rewards_are_sigmoid_of_the_linear_head(tmp_path, base):
    probe = TargetProbe.from_directory(probe_dir(tmp_path, base, weight=(0.5, -1.0, 2.0), bias=0.25))
    states = [np.array([1.0, 2.0, 3.0]), np.array([-800.0, 0.0, 0.0])]
    expected = 1 / (1 + math.exp(-(0.5 - 2.0 + 6.0 + 0.25)))
    assert probe.rewards_of(states) == pytest.approx([expected, 0.0])
    assert probe.hidden_size == 3 and probe.base_model == str(base)


@pytest.mark.parametrize("method", ["specs", "rsd", "beam_search", "best_of_n"])
def test_a_probe_search_equals_the_search_with_the_rewards_it_encodes(tmp_path, base, method):
    """Same rewards, same seeds: the same steps, scores and target calls, so reading the
    states adds no target forward; in SPECS the reward model is never called."""
    config = SpecsConfig(n=2, beam_width=2, accept_threshold=0.0, seed=3)
    results, calls = [], []
    CountingProbe.score_calls = 0
    for use_probe in (False, True):
        draft, target = roles()
        if use_probe:
            probe = CountingProbe.from_directory(probe_dir(tmp_path, base))
            reward = probe.attach(target, base)
        else:
            reward = ScriptedReward(REWARDS)
        engine = SpecsEngine(draft, target, reward)
        results.append(engine.generate("q", method, config, Budget(max_steps=5)))
        calls.append((draft.propose_calls, target.propose_calls, target.score_calls))
    plain, probed = results
    assert [(s.text, s.source, s.reward, s.score) for s in probed.steps] == \
           [(s.text, s.source, pytest.approx(s.reward), pytest.approx(s.score)) for s in plain.steps]
    if method == "specs":
        assert {s.source for s in probed.steps} == {"draft", "target"}  # both paths ran
        assert calls[1] == calls[0]
        assert CountingProbe.score_calls == 0
    else:  # draft steps outside a target forward: the probe's own forward, as reward
        assert calls[1][:2] == calls[0][:2]


def test_in_specs_the_rewards_come_from_the_states_not_a_reward_call(tmp_path, base):
    draft, target = roles()
    probe = TargetProbe.from_directory(probe_dir(tmp_path, base))
    seen = []
    probe.rewards_of = lambda states: seen.append(len(states)) or [0.9] * len(states)  # type: ignore
    probe.rewards_at = lambda *a: pytest.fail("the probe's own forward ran in SPECS")  # type: ignore
    result = SpecsEngine(draft, target, probe.attach(target, base)).generate(
        "q", config=SpecsConfig(n=2, beam_width=2, accept_threshold=0.0), budget=Budget(max_steps=3))
    assert [(s.source, s.reward) for s in result.steps] == [("target", 0.9), ("target", 0.9), ("draft", 0.9)]
    assert seen == [2, 2, 2, 2]  # target round, draft round (rejected: "bad"), target, draft


def test_the_probes_own_forward_is_reward_time_not_target_time(tmp_path, base):
    clock = FakeClock()
    draft, target = roles(clock, score_cost=1.0)
    probe = TargetProbe.from_directory(probe_dir(tmp_path, base)).attach(target, base)
    result = SpecsEngine(draft, target, probe, clock=clock).generate(
        "q", "beam_search", SpecsConfig(n=2, beam_width=2), Budget(max_steps=2), model="draft")
    assert target.propose_calls == 0 and target.score_calls == 2
    assert result.stats.reward_s == pytest.approx(2.0) and result.stats.target_s == 0.0


@pytest.mark.parametrize("method", ["specs", "rsd", "beam_search"])
def test_a_probe_reads_the_state_its_offset_names_on_every_path(tmp_path, base, method):
    """state_offset 1: the scoring forward and the target's proposals are asked for the
    state one token before each step's last, the probe's own forward (rsd, beam search)
    reads that token too, and every reward is the head on it."""
    draft, target = roles()
    probe = TargetProbe.from_directory(probe_dir(tmp_path, base, state_offset=1)).attach(target, base)
    assert probe.state_offset == 1
    config = SpecsConfig(n=2, beam_width=2, accept_threshold=0.0, seed=3)
    result = SpecsEngine(draft, target, probe).generate("q", method, config, Budget(max_steps=5))
    scored = [s for s in result.steps if s.reward is not None]
    assert scored and [s.reward for s in scored] == pytest.approx([REWARDS[s.text[:-1]] for s in scored])
    if method == "specs":
        assert {s.source for s in result.steps} == {"draft", "target"}
        assert target.offsets and set(target.offsets) == {1}


def test_a_step_too_short_for_the_offset_is_read_at_its_first_token(tmp_path, base):
    """A one-token step has no token before its last: the backends give no state, and the
    probe's own forward reads the step's only token, as the training script lays it out."""
    _, target = roles()
    probe = TargetProbe.from_directory(probe_dir(tmp_path, base, state_offset=1)).attach(target, base)
    [reward] = probe.score("q", [["good\n\n", "t"]])
    assert reward == pytest.approx(REWARDS["t"])
    assert target.offsets == [0]  # the continuation was cut to the token read
    assert read_state(target.encode("t"), 1) is None


def test_greedy_asks_no_states(tmp_path, base):
    draft, target = roles()
    asked = []
    propose = target.propose
    target.propose = lambda p, n, params: asked.append(params.with_states) or propose(p, n, params)
    probe = TargetProbe.from_directory(probe_dir(tmp_path, base)).attach(target, base)
    SpecsEngine(draft, target, probe).generate("q", "greedy", budget=Budget(max_steps=2))
    assert asked == [False, False]


# ---- binding to the target ---------------------------------------------------------------


def test_a_probe_for_another_base_is_refused_naming_both(tmp_path, base):
    other = tmp_path / "other-model"
    other.mkdir()
    probe = TargetProbe.from_directory(probe_dir(tmp_path, base))
    _, target = roles()
    with pytest.raises(ConfigError, match=f"base_model='{base}'.*target is '{other}'"):
        probe.attach(target, other)


def test_a_registry_name_and_its_cache_directory_are_one_model(tmp_path, monkeypatch):
    monkeypatch.setenv("SPECS_CACHE", str(tmp_path))
    cached = tmp_path / "models" / "qwen2.5-coder-1.5b"
    cached.mkdir(parents=True)
    (cached / "m.gguf").write_bytes(b"")
    assert model_identity(cached) == model_identity(cached / "m.gguf") == "qwen2.5-coder-1.5b"
    assert model_identity("qwen2.5-coder-1.5b") != model_identity("qwen2.5-coder-0.5b")
    probe = TargetProbe(np.ones(3), 0.0, base_model="qwen2.5-coder-1.5b")
    probe.check_target(cached / "m.gguf")
    with pytest.raises(ConfigError, match="'qwen2.5-coder-1.5b'.*'qwen2.5-coder-0.5b'"):
        probe.check_target("qwen2.5-coder-0.5b")


@pytest.mark.parametrize("backend", ["vllm", "openai"])
def test_a_served_target_is_refused_with_the_backends_that_work(tmp_path, base, backend):
    probe = TargetProbe.from_directory(probe_dir(tmp_path, base))
    with pytest.raises(ConfigError, match=f"backend='{backend}'.*completions API.*llama.cpp or transformers"):
        probe.check_target(base, backend)


def test_from_pretrained_refuses_a_served_target_before_loading_models(tmp_path, base, monkeypatch):
    from specs_engine import backends

    monkeypatch.setattr(backends, "load_language_model", lambda *a, **k: pytest.fail("a model loaded"))
    with pytest.raises(ConfigError, match="backend='openai'.*hidden states"):
        SpecsEngine.from_pretrained(draft="http://localhost:1/v1", target="http://localhost:1/v1",
                                    reward=str(probe_dir(tmp_path, base)), backend="openai")
    with pytest.raises(ConfigError, match="no target was given"):
        SpecsEngine.from_pretrained(draft=str(base), reward=str(probe_dir(tmp_path, base)),
                                    backend="transformers")


def test_a_target_without_states_is_refused(tmp_path, base):
    probe = TargetProbe.from_directory(probe_dir(tmp_path, base))
    plain = ScriptedLM("plain-target", lambda i: ["t\n\n"])
    with pytest.raises(ConfigError, match="no score_with_states.*vllm, openai.*llama.cpp and transformers"):
        probe.attach(plain, base)


def test_the_engine_refuses_a_probe_not_bound_to_its_target(tmp_path, base):
    draft, target = roles()
    probe = TargetProbe.from_directory(probe_dir(tmp_path, base))
    with pytest.raises(ConfigError, match="attached to no target"):
        SpecsEngine(draft, target, probe)
    _, other = roles()
    with pytest.raises(ConfigError, match="attached to target 'target', but this engine's target"):
        SpecsEngine(draft, target, probe.attach(other, base))
    assert probe.target is None  # attach returns a bound copy: the loaded probe is shared


def test_a_target_of_another_hidden_size_is_refused(tmp_path, base):
    probe = TargetProbe.from_directory(probe_dir(tmp_path, base, weight=(1.0, 0.0)))
    _, target = roles()
    with pytest.raises(ConfigError, match="hidden_size=2 .*hidden_size=3"):
        probe.attach(target, base)
    with pytest.raises(ConfigError, match="hidden_size=2 .*hidden_size=3"):
        probe.rewards_of([np.zeros(3)])


# ---- the head's files ------------------------------------------------------------------


def edit_config(directory, **changes):
    file = directory / "specs_reward.json"
    meta = {**json.loads(file.read_text()), **changes}
    file.write_text(json.dumps({k: v for k, v in meta.items() if v is not None}))


@pytest.mark.parametrize("changes, message", [
    (dict(hidden_size=None), "lacks hidden_size"),
    (dict(base_model=None), "lacks base_model"),
    (dict(type="value_head"), "type is 'value_head', expected 'target_probe'"),
    (dict(hidden_size=4), r"weight \[1, 3\] .* hidden_size=4"),
    (dict(hidden_size="3"), "hidden_size='3' is not allowed"),
    (dict(weights_sha256="0" * 64), "does not match weights_sha256"),
    (dict(state_offset=-1), "state_offset=-1 is not allowed: give a non-negative integer"),
    (dict(state_offset="1"), "state_offset='1' is not allowed"),
    (dict(state_offset=True), "state_offset=True is not allowed"),
])
def test_bad_head_files_are_refused_clearly(tmp_path, base, changes, message):
    directory = probe_dir(tmp_path, base)
    edit_config(directory, **changes)
    with pytest.raises(ConfigError, match=message):
        TargetProbe.from_directory(directory)


def test_missing_weights_and_unknown_types_are_refused(tmp_path, base):
    from specs_engine.rewards import load_reward_model

    directory = probe_dir(tmp_path, base)
    (directory / "value_head.safetensors").unlink()
    with pytest.raises(ConfigError, match="holds no value_head.safetensors"):
        TargetProbe.from_directory(directory)
    edit_config(directory, type="mystery")
    with pytest.raises(ConfigError, match="type='mystery'.*known types are value_head, target_probe"):
        load_reward_model(str(directory))


def test_loading_a_probe_directory_imports_no_torch_and_loads_no_model(tmp_path, base):
    directory = probe_dir(tmp_path, base, feature="final hidden state", held_out={"auroc": 0.9})
    code = (
        "import sys; from specs_engine.backends import load_reward_model, load_count\n"
        f"probe = load_reward_model({str(directory)!r}, backend='llama.cpp')\n"
        "print(type(probe).__name__, probe.hidden_size, load_count(), 'torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["TargetProbe", "3", "1", "False"]  # the one load: the probe


def test_a_target_candidate_without_a_state_is_scored_by_the_probes_own_forward(tmp_path, base):
    """An empty step has no state of its own: the probe reads the end of its prefix."""
    draft, target = roles()
    propose = target.propose
    target.propose = lambda p, n, params: [
        [replace(c, state=None) for c in row] for row in propose(p, n, params)]
    probe = CountingProbe.from_directory(probe_dir(tmp_path, base)).attach(target, base)
    CountingProbe.score_calls = 0
    result = SpecsEngine(draft, target, probe).generate("q", budget=Budget(max_steps=1))
    assert result.steps[0].reward == pytest.approx(REWARDS["t\n\n"]) and CountingProbe.score_calls == 1


class RecordingProbe(TargetProbe):
    """Records the prefixes rewards_at reads (the probe's own target forward)."""

    prefixes: list = []

    def rewards_at(self, prefixes, steps):
        type(self).prefixes += [list(p) for p in prefixes]
        return super().rewards_at(prefixes, steps)


def test_unscored_finished_beams_are_read_after_the_searchs_own_prompt_ids(tmp_path, base):
    """Beams that finished without a reward are ranked once at the end (SearchRun.finish):
    the probe must read them after the prompt as the search encoded it (chat template,
    system turn), the layout it was trained on and the rounds use, not the bare question."""
    from specs_engine.result import Step
    from specs_engine.search.clock import RunClock

    draft, target = roles()
    probe = RecordingProbe.from_directory(probe_dir(tmp_path, base)).attach(target, base)
    RecordingProbe.prefixes = []
    chat = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "q"}]
    engine = SpecsEngine(draft, target, probe)
    run = engine._prepare(chat, "best_of_n", SpecsConfig(n=2, beam_width=2), Budget(), "target",
                          None, None, None, timer=RunClock(engine.clock, engine.clock(), None))
    beams = [run.root.child(Step(text, "target", None, None, None, len(text)), tuple(target.encode(text)))
             for text in ("good\n\n", "bad\n\n")]
    run.score_unrewarded(beams)
    assert [b.reward for b in beams] == pytest.approx([REWARDS["good\n\n"], REWARDS["bad\n\n"]])
    prompt = target.encode_prompt(chat)
    assert RecordingProbe.prefixes == [prompt, prompt]
    assert prompt != target.encode_prompt("q")  # what score(question, texts) would have read after


@pytest.mark.parametrize("name", ["specs-probe-target", "specs-probe-outcome"])
def test_the_shipped_probes_are_the_preset_targets(name):
    from specs_engine.sources import resolve

    probe = TargetProbe.from_directory(resolve(name))
    assert probe.base_model == "qwen2.5-coder-1.5b" and probe.hidden_size == 1536
    assert probe.state_offset == 1  # the token before the delimiter-carrying last one
    probe.check_target("qwen2.5-coder-1.5b")


def test_the_state_offset_is_saved_read_back_and_zero_when_absent(tmp_path, base):
    directory = probe_dir(tmp_path, base, state_offset=2)
    assert json.loads((directory / "specs_reward.json").read_text())["state_offset"] == 2
    assert TargetProbe.from_directory(directory).state_offset == 2
    edit_config(directory, state_offset=None)  # a head saved before the offset existed
    assert TargetProbe.from_directory(directory).state_offset == 0


def test_a_bad_state_offset_is_refused_by_the_probe_and_the_proposal_params():
    from specs_engine.backends.candidates import check_params
    from specs_engine.models import ProposalParams

    with pytest.raises(ConfigError, match="state_offset=-1 is not allowed: give a non-negative integer"):
        TargetProbe(np.ones(3), 0.0, base_model="m", state_offset=-1)
    with pytest.raises(ConfigError, match="state_offset=1.5 is not allowed"):
        check_params(ProposalParams("\n\n", 4, with_states=True, state_offset=1.5))
