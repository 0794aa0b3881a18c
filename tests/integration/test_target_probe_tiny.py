"""The target probe end to end on the tiny real models, on transformers and on llama.cpp:
every step's reward (from the target's scoring forward for draft steps, from the
target's own decode for its steps) equals the probe applied to the hidden state of a
separate transformers forward over the same tokens, at the token its state_offset names
(0: a step's last token; 1: the one before, as the shipped probe reads)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from specs_engine import Budget, ConfigError, SpecsConfig, SpecsEngine
from specs_engine.backends.hf.lm import TransformersLM
from specs_engine.methods import get_method
from specs_engine.rewards.target_probe import TargetProbe
from specs_engine.search.clock import RunClock

QUESTION = "Ann has 3 apples and buys 4 more. How many apples does Ann have?"
CONFIG = SpecsConfig(n=2, beam_width=2, tau=0.0, accept_threshold=-math.inf, seed=2)
"""tau 0: the search drafts after its first target round; every draft step is accepted
(seed 2: the first target step does not end the solution, so draft steps follow)."""
TOLERANCE = {"transformers": 1e-4, "llama.cpp": 2e-3}
"""Rewards (sigmoids) on float32 weights: one runtime differs from itself by rounding
only; llama.cpp with f32 KV cells from transformers by its kernels' rounding."""


def save_probe(directory, base, hidden: int, state_offset: int = 0):
    rng = np.random.default_rng(7)
    probe = TargetProbe(rng.normal(0.0, 0.5, hidden), 0.1, base_model=str(base), state_offset=state_offset)
    return probe.save(directory)


@pytest.fixture(scope="module")
def reference(tiny_target_dir):
    """The target on transformers float32: the separate forward the rewards are checked on."""
    return TransformersLM.from_pretrained(tiny_target_dir, dtype="float32")


@pytest.fixture(scope="module")
def target_gguf(tmp_path_factory, tiny_target_dir, tiny_draft_dir):
    pytest.importorskip("llama_cpp", reason="llama-cpp-python is not installed")
    from tests.helpers.tiny_gguf import write_gguf

    dirs = {}
    for role, source in (("draft", tiny_draft_dir), ("target", tiny_target_dir)):
        dirs[role] = tmp_path_factory.mktemp(f"probe_gguf_{role}")
        write_gguf(source, dirs[role] / f"{role}.gguf")
    return dirs


def engine_on(backend, tmp_path, tiny_draft_dir, tiny_target_dir, target_gguf=None, state_offset=0):
    if backend == "llama.cpp":
        draft, target = target_gguf["draft"], target_gguf["target"]
        options = dict(n_threads=1, kv_type="f32")
    else:
        draft, target, options = tiny_draft_dir, tiny_target_dir, {}
    probe = save_probe(tmp_path / "probe", target, hidden=64, state_offset=state_offset)
    return SpecsEngine.from_pretrained(draft=str(draft), target=str(target), reward=str(probe),
                                       backend=backend, dtype="float32", **options)


def searched(engine, method="specs", model="target", prompt=QUESTION):
    """The run after the search, so a test reads each step's token ids."""
    budget = Budget(max_steps=4)
    run = engine._prepare(prompt, method, CONFIG, budget, model, None, None, None,
                          timer=RunClock(engine.clock, None, None))
    get_method(method).run(run, model)
    return run


def checked_rewards(run, probe, reference, offset: int, tolerance: float) -> dict[str, int]:
    """Asserts every step's reward is the probe on a separate forward's state at the token
    its offset names (the step less its last `offset` tokens, at least one kept), over the
    target's prompt ids and the beam's ids; returns how many steps of each source it checked."""
    checked = {"draft": 0, "target": 0}
    for beam in run.completed + run.beams:
        done = []
        for node in beam.chain():
            if node.token_ids and node.step.reward is not None:
                read = list(node.token_ids)[: max(1, len(node.token_ids) - offset)]  # the token read
                state = reference.last_hidden_states([run.prompt_ids["target"] + done + read])
                expected = probe.rewards_of(state.numpy())[0]
                assert node.step.reward == pytest.approx(expected, abs=tolerance), node.step
                checked[node.step.source] += 1
            done += list(node.token_ids)
    return checked


@pytest.mark.parametrize("offset", [0, 1])
@pytest.mark.parametrize("backend", ["transformers", "llama.cpp"])
def test_specs_rewards_are_the_probe_on_the_targets_own_states(
    backend, offset, tmp_path, tiny_draft_dir, tiny_target_dir, reference, request,
):
    gguf = request.getfixturevalue("target_gguf") if backend == "llama.cpp" else None
    engine = engine_on(backend, tmp_path, tiny_draft_dir, tiny_target_dir, gguf, state_offset=offset)
    assert isinstance(engine.reward, TargetProbe) and engine.reward.target is engine.target
    assert engine.reward.state_offset == offset
    run = searched(engine)
    checked = checked_rewards(run, engine.reward, reference, offset, TOLERANCE[backend])
    assert checked["draft"] and checked["target"], checked  # both ways of reading states ran
    assert run.stats.reward_s < run.stats.target_s  # the head's arithmetic, not a forward


@pytest.mark.parametrize("method, model", [("rsd", "target"), ("beam_search", "draft")])
def test_a_probe_scores_draft_steps_with_a_target_forward_of_its_own(
    method, model, tmp_path, tiny_draft_dir, tiny_target_dir, reference,
):
    """Over the ids the search holds and the target's prompt as the search encoded it
    (chat messages through the template), at the probe's offset."""
    engine = engine_on("transformers", tmp_path, tiny_draft_dir, tiny_target_dir, state_offset=1)
    run = searched(engine, method, model, prompt=[{"role": "user", "content": QUESTION}])
    assert checked_rewards(run, engine.reward, reference, 1, TOLERANCE["transformers"])["draft"]
    assert run.stats.reward_s > 0


def test_a_probe_on_another_base_is_refused_naming_both(tmp_path, tiny_draft_dir, tiny_target_dir):
    probe = save_probe(tmp_path / "probe", tiny_draft_dir, hidden=48)
    with pytest.raises(ConfigError, match=f"base_model='{tiny_draft_dir}'.*target is '{tiny_target_dir}'"):
        SpecsEngine.from_pretrained(draft=str(tiny_draft_dir), target=str(tiny_target_dir),
                                    reward=str(probe), backend="transformers", dtype="float32")


@pytest.mark.parametrize("backend", ["transformers", "llama.cpp"])
def test_a_probe_of_the_wrong_hidden_size_is_refused(
    backend, tmp_path, tiny_draft_dir, tiny_target_dir, request,
):
    gguf = request.getfixturevalue("target_gguf") if backend == "llama.cpp" else {}
    draft, target = gguf.get("draft", tiny_draft_dir), gguf.get("target", tiny_target_dir)
    probe = save_probe(tmp_path / "probe", target, hidden=48)
    options = dict(n_threads=1) if backend == "llama.cpp" else {}
    with pytest.raises(ConfigError, match="hidden_size=48.*target .*hidden_size=64"):
        SpecsEngine.from_pretrained(draft=str(draft), target=str(target), reward=str(probe),
                                    backend=backend, dtype="float32", **options)
