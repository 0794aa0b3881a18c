"""benchmarks/verifier_quality.py's figures on fixed rows: step and final-step AUROC,
best-of-n selection against random choice and the oracle (no model runs)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))
import policy_samples  # noqa: E402
import verifier_quality as vq  # noqa: E402


def _problem(outcomes: list[bool], rewards: list[list[float]]) -> dict:
    return {"solutions": [{"correct": ok} for ok in outcomes], "rewards": rewards}


# Problem A, mixed: the right solution's last step scores highest, so best-of-n picks right.
A = _problem([True, False], [[0.2, 0.9], [0.6, 0.3]])
# Problem B, mixed: a wrong solution ends highest, so best-of-n picks wrong.
B = _problem([False, True, False], [[0.8], [0.5, 0.4], [0.1]])
# Problem C: nothing right; nothing to tell apart.
C = _problem([False, False], [[0.7], [0.95]])


def test_step_auroc_labels_every_prefix_with_its_solutions_outcome():
    # right prefixes: 0.2, 0.9, 0.5, 0.4; wrong: 0.6, 0.3, 0.8, 0.1
    # pairs right > wrong: 0.2 -> {0.1}: 1; 0.9 -> 4; 0.5 -> {0.3, 0.1}: 2; 0.4 -> 2. 9 of 16
    assert vq.step_auroc([A, B]) == pytest.approx(9 / 16)


def test_final_step_auroc_reads_only_last_steps():
    # right finals: 0.9, 0.4; wrong: 0.3, 0.8, 0.1 -> 0.9 beats 3, 0.4 beats 2: 5 of 6
    assert vq.final_auroc([A, B]) == pytest.approx(5 / 6)


def test_within_problem_auroc_pairs_right_and_wrong_of_one_problem_only():
    # A: 0.9 > 0.3 (1 pair won); B: 0.4 against 0.8 and 0.1 (1 of 2); C: no pair
    assert vq.within_problem_auroc([A, B, C]) == pytest.approx(2 / 3)


def test_auroc_counts_a_tie_as_half():
    tied = _problem([True, False], [[0.5], [0.5]])
    assert vq.final_auroc([tied]) == pytest.approx(0.5)


def test_selection_against_random_and_oracle():
    figures = vq.selection([A, B, C])
    assert figures["problems"] == 3
    assert figures["best_of_n_accuracy"] == pytest.approx(1 / 3)  # A only
    assert figures["random_accuracy"] == pytest.approx((1 / 2 + 1 / 3 + 0) / 3)
    assert figures["oracle_accuracy"] == pytest.approx(2 / 3)
    assert figures["mixed_problems"] == 2  # A and B; C has no right solution
    assert figures["picked_right_on_mixed"] == 1
    assert figures["random_right_on_mixed"] == pytest.approx(1 / 2 + 1 / 3)


def test_best_of_n_takes_the_first_solution_on_a_tie():
    assert vq.picked(_problem([True, False], [[0.5], [0.5]])) is True
    assert vq.picked(_problem([False, True], [[0.5], [0.5]])) is False


def test_figures_give_none_for_auroc_without_both_outcomes():
    figures = vq.figures_of([C])
    assert figures["step_auroc"] is None and figures["final_step_auroc"] is None
    assert figures["within_problem_final_auroc"] is None
    assert figures["prefixes"] == 2 and figures["oracle_accuracy"] == 0


def test_difficulty_step_auroc_scores_prefixes_by_the_other_solutions_success():
    rows = [{"solutions": [{"correct": True, "ids": [[1], [2]]}, {"correct": True, "ids": [[3]]},
                           {"correct": False, "ids": [[4]]}]},
            {"solutions": [{"correct": False, "ids": [[5]]}, {"correct": True, "ids": [[6], [7]]}]}]
    # rewards: problem 1 right prefixes 1/2, 1/2, 1/2; wrong 2/2. Problem 2: wrong 1/1, right 0/1, 0/1.
    # right {.5, .5, .5, 0, 0} vs wrong {1, 1}: every right prefix loses -> 0
    assert vq.difficulty_step_auroc(rows) == pytest.approx(0.0)
    easy_hard = [{"solutions": [{"correct": True, "ids": [[1]]}] * 3},
                 {"solutions": [{"correct": False, "ids": [[1]]}] * 3}]
    assert vq.difficulty_step_auroc(easy_hard) == pytest.approx(1.0)


class _Problem:
    def messages(self) -> list[dict[str, str]]:
        return [{"role": "user", "content": "Q?"}]


SOLUTIONS = [{"steps": ["a", "b"], "ids": [[1, 2], [3]]}, {"steps": ["c"], "ids": [[4]]}]


def test_a_reward_model_scores_every_prefix_round_by_round():
    asked = []

    class Reward:
        name = "fake"

        def score(self, question, solutions):
            asked.append((question, [list(s) for s in solutions]))
            return [float(len(s)) + 0.1 * len(solutions) for s in solutions]

    assert vq.prefix_rewards(Reward(), None, _Problem(), SOLUTIONS) == [[1.2, 2.1], [1.2]]
    assert asked == [("Q?", [["a"], ["c"]]), ("Q?", [["a", "b"]])]


def test_a_probe_reads_the_targets_forward_over_prompt_and_step_ids():
    """The probe is handed the search's layout (prompt ids, earlier steps' ids, the step's
    ids) and reads it itself (rewards_at: its own state_offset, one target forward)."""
    asked = []

    class Target:
        def encode_prompt(self, prompt):
            return [100, 101]

    class Probe:
        name, state_offset = "probe", 1

        def rewards_of(self, states):
            raise AssertionError("the probe reads its states itself, through rewards_at")

        def rewards_at(self, prefixes, steps):
            asked.append((prefixes, steps))
            return [float(step[-1]) / 10 if step else -1.0 for step in steps]

    rewards = vq.prefix_rewards(Probe(), Target(), _Problem(), SOLUTIONS)
    assert rewards == [[0.2, 0.3], [0.4]]
    assert asked == [([[100, 101], [100, 101]], [[1, 2], [4]]), ([[100, 101, 1, 2]], [[3]])]
    asked.clear()  # an empty step goes to the probe as it is (read_at decides where to read)
    assert vq.prefix_rewards(Probe(), Target(), _Problem(), [{"steps": [""], "ids": [[]]}]) == [[-1.0]]
    assert asked == [([[100, 101]], [[]])]


def test_figures_only_rewrites_figures_from_the_folders_rows_without_loading_a_model(tmp_path, monkeypatch):
    """A folder whose settings record older search defaults can still be summarised."""
    import json

    from specs_engine.app.data.gsm8k import load_problems

    monkeypatch.setattr(vq, "load_language_model", lambda *a, **k: pytest.fail("a model was loaded"))
    ids = [p.id for p in load_problems("tune", limit=2)]
    solutions = [{"steps": ["a"], "ids": [[1]], "correct": True}, {"steps": ["b"], "ids": [[2]], "correct": False}]
    for problem in ids:
        vq.append_jsonl(tmp_path / vq.SAMPLES, {"problem": problem, "sampling_s": 6.0, "solutions": solutions})
        vq.append_jsonl(tmp_path / vq.SCORES, {"reward": "r", "problem": problem, "scoring_s": 3.0,
                                               "rewards": [[0.9], [0.1]]})
    (tmp_path / "settings.json").write_text('{"config": {"beta": 4.0}}')
    assert vq.main(["--rewards", "r", "--limit", "2", "--out", str(tmp_path), "--figures-only"]) == 0
    figures = json.loads((tmp_path / "figures.json").read_text())["figures"]
    assert figures["problems"] == 2 and figures["sampling_minutes"] == 0.2
    assert figures["rewards"]["r"]["final_step_auroc"] == 1.0
    assert figures["difficulty_step_auroc"] == 0.0  # each right prefix's problem-mate is wrong


def test_a_samples_folder_resumes_after_a_search_default_changed(tmp_path):
    """A samples folder recorded under older search defaults (the whole config, beta 4)
    resumes under today's, and is still refused when a sampling knob changed."""
    from dataclasses import replace

    from specs_engine.app import bench
    from specs_engine.config import Budget, SpecsConfig
    from specs_engine.errors import ConfigError

    models = {"draft": "d", "sampler": "best_of_n:draft"}
    config, budget = SpecsConfig(n=4, max_step_tokens=64, seed=0), Budget(max_steps=12)
    bench.check_settings(tmp_path, bench.settings("tune", replace(config, beta=4.0, accept_threshold=-6.0),
                                                  budget, models))
    recorded = policy_samples.sampling_settings("tune", config, budget, models)
    assert set(recorded["config"]) == set(policy_samples.SAMPLING_KNOBS)
    bench.check_settings(tmp_path, recorded)  # beta and accept_threshold differ: not sampling knobs
    with pytest.raises(ConfigError, match=r"config.temperature: 0.7 -> 1.0"):
        bench.check_settings(tmp_path, policy_samples.sampling_settings("tune", replace(config, temperature=1.0),
                                                                        budget, models))
