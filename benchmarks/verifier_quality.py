"""Verifier quality, held out: how well each reward tells good from bad partial solutions
on the draft's own samples, on the tune split.

Why: a reward's training metric is measured on its own training distribution (reference
steps, injected errors); what the search needs is a reward that ranks the policy's own
steps. Here the draft writes n solutions per tune problem exactly as best-of-n would
(search/best_of_n.py on a SearchRun: same proposals, seeds, step ends and budget), every
step prefix of every solution is labelled with its solution's outcome ("does this prefix
lead to a right answer"), and each reward scores every prefix in the layout the search
gives it: a RewardModel gets score(question, steps) round by round (as best_of_n asks it),
a probe on the target (StateReward) reads the target's scoring forward over the target's
prompt ids plus the steps' own token ids (score_with_states, as a SPECS verify does).

    HF_HUB_OFFLINE=1 nice .venv/bin/python benchmarks/verifier_quality.py \\
        --rewards specs-prm specs-prm-target specs-probe-target --limit 24

Resumable: samples.jsonl (one line per problem) and scores.jsonl (one line per reward and
problem) in --out; a rerun skips what they hold, so adding a reward is a rerun with one
more name. One --seed reproduces the samples. figures.json is rewritten from both files.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Iterable, Sequence

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks"), str(ROOT / "scripts")]

from artefact import RESULTS, write_artefact  # noqa: E402
from policy_samples import (  # noqa: E402
    BACKEND, DRAFT, SAMPLES, TARGET, append_jsonl, read_jsonl, sample_all, sampling_settings,
)
import torch  # noqa: E402
from train_reward import auroc  # noqa: E402

from specs_engine.app import bench  # noqa: E402
from specs_engine.app.data.gsm8k import Problem, load_problems  # noqa: E402
from specs_engine.backends import load_language_model, load_reward_model  # noqa: E402
from specs_engine.config import Budget, SpecsConfig  # noqa: E402
from specs_engine.errors import ConfigError  # noqa: E402
from specs_engine.models import LanguageModel, StateReward  # noqa: E402
from specs_engine.search.run import question_of  # noqa: E402

SCORES = "scores.jsonl"
OUT = RESULTS / "verifier_quality"

# ---- rewards of every prefix ------------------------------------------------------------

def prefix_rewards(reward: Any, target: LanguageModel | None, problem: Problem,
                   solutions: Sequence[dict]) -> list[list[float]]:
    """rewards[i][k-1]: the reward of solution i's first k steps, scored round by round
    (round k: every solution with k steps or more), as the search asks its reward."""
    rewards: list[list[float]] = [[] for _ in solutions]
    for k in range(1, max(len(s["steps"]) for s in solutions) + 1):
        members = [i for i, s in enumerate(solutions) if len(s["steps"]) >= k]
        if isinstance(reward, StateReward):
            values = _probe_round(reward, target, problem, [solutions[i] for i in members], k)
        else:
            values = reward.score(question_of(problem.messages()),
                                  [solutions[i]["steps"][:k] for i in members])
        for i, value in zip(members, values):
            rewards[i].append(float(value))
    return rewards


def _probe_round(probe: StateReward, target: Any, problem: Problem, solutions: Sequence[dict],
                 k: int) -> list[float]:
    """The probe's reward of step k over its prompt ids and steps 1..k-1's ids (a SPECS
    verify's layout), read where the probe reads (its state_offset) by the probe's own
    rewards_at: one score_with_states call of the target it is bound to."""
    prompt = target.encode_prompt(problem.messages())
    prefixes = [prompt + [i for ids in s["ids"][:k - 1] for i in ids] for s in solutions]
    return probe.rewards_at(prefixes, [list(s["ids"][k - 1]) for s in solutions])


# ---- figures ------------------------------------------------------------------------------

def step_auroc(problems: Iterable[dict]) -> float:
    """Every prefix's reward against its solution's outcome."""
    pairs = [(r, s["correct"]) for p in problems for s, rs in zip(p["solutions"], p["rewards"]) for r in rs]
    return auroc([r for r, _ in pairs], [int(ok) for _, ok in pairs])


def final_auroc(problems: Iterable[dict]) -> float:
    """Each solution's last-step reward against its outcome."""
    pairs = [(rs[-1], s["correct"]) for p in problems for s, rs in zip(p["solutions"], p["rewards"])]
    return auroc([r for r, _ in pairs], [int(ok) for _, ok in pairs])


def within_problem_auroc(problems: Iterable[dict]) -> float:
    """Last-step rewards of right against wrong solutions of the same problem only (the
    pooled AUROCs also reward telling easy problems from hard ones; selection needs this):
    the problems' AUROCs weighted by their (right, wrong) pairs."""
    weighted = []
    for p in problems:
        finals = [rs[-1] for rs in p["rewards"]]
        labels = [int(s["correct"]) for s in p["solutions"]]
        pairs = sum(labels) * (len(labels) - sum(labels))
        if pairs:
            weighted.append((auroc(finals, labels), pairs))
    if not weighted:
        return math.nan
    return sum(a * w for a, w in weighted) / sum(w for _, w in weighted)


def picked(problem: dict) -> bool:
    """Whether the solution with the highest last-step reward is right (the first on a tie,
    as max() picks in the search)."""
    finals = [rs[-1] for rs in problem["rewards"]]
    return problem["solutions"][finals.index(max(finals))]["correct"]


def selection(problems: Sequence[dict]) -> dict[str, Any]:
    """Best-of-n by last-step reward against random choice and the oracle, over all
    problems and over the mixed ones (some solutions right, some wrong: only those can be
    told apart)."""
    right = [[s["correct"] for s in p["solutions"]] for p in problems]
    mixed = [p for p, r in zip(problems, right) if any(r) and not all(r)]
    return {
        "problems": len(problems),
        "best_of_n_accuracy": statistics.mean(map(picked, problems)),
        "random_accuracy": statistics.mean(statistics.mean(r) for r in right),
        "oracle_accuracy": statistics.mean(any(r) for r in right),
        "mixed_problems": len(mixed),
        "picked_right_on_mixed": sum(map(picked, mixed)),
        "random_right_on_mixed": sum(statistics.mean(s["correct"] for s in p["solutions"]) for p in mixed),
    }


def figures_of(problems: Sequence[dict]) -> dict[str, Any]:
    """A reward's figures over problems (each: solutions and their prefix rewards)."""
    return {"step_auroc": _number(step_auroc(problems)), "final_step_auroc": _number(final_auroc(problems)),
            "within_problem_final_auroc": _number(within_problem_auroc(problems)),
            "prefixes": sum(len(rs) for p in problems for rs in p["rewards"]), **selection(problems)}


def difficulty_step_auroc(problems: Iterable[dict]) -> float:
    """The step AUROC of a reward that knows only how hard the problem is for the policy:
    each prefix scored by the share of its problem's OTHER solutions that are right. Early
    prefixes' outcomes are still to be sampled, so even a perfect verifier's step AUROC is
    bounded; this says how much of it problem difficulty alone already earns."""
    scored = []
    for p in problems:
        right = sum(s["correct"] for s in p["solutions"])
        others = max(len(p["solutions"]) - 1, 1)
        scored.append({"solutions": p["solutions"],
                       "rewards": [[(right - s["correct"]) / others] * len(s["ids"]) for s in p["solutions"]]})
    return step_auroc(scored)


def _number(value: float) -> float | None:
    """None for an AUROC with no right or no wrong rows (NaN is not JSON)."""
    return None if math.isnan(value) else value


# ---- the run --------------------------------------------------------------------------------

def load_reward(name: str, target: LanguageModel | None) -> Any:
    """A reward by registry name or directory, a probe bound to the target it reads."""
    reward = load_reward_model(name, backend=BACKEND)
    if isinstance(reward, StateReward):
        if target is None:
            raise ConfigError(f"reward {name!r} reads the target's states: no target loaded")
        reward = reward.attach(target, TARGET, BACKEND)
    return reward


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rewards", nargs="+", required=True, help="reward registry names or directories")
    parser.add_argument("--limit", type=int, default=None, help="first N tune problems (default: all)")
    parser.add_argument("--n", type=int, default=4, help="draft solutions per problem")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--threads", type=int, default=1,
                        help="llama.cpp and torch threads (default 1: on a shared machine, more "
                             "threads than free cores stall at every token's barrier)")
    parser.add_argument("--figures-only", action="store_true",
                        help="rewrite figures.json from the folder's rows, no model loads")
    args = parser.parse_args(argv)
    problems = load_problems("tune", limit=args.limit)
    if args.figures_only:
        figures = derive(args.out, [p.id for p in problems], args.rewards)
    else:
        figures = sample_and_score(args, problems)
    path = write_artefact("figures", figures, out_dir=args.out,
                          notes=f"{args.n} draft samples per tune problem ({SAMPLES}), every step "
                                f"prefix scored by each reward ({SCORES}); not a timing")
    print(json.dumps(figures["rewards"], indent=1))
    print(f"wrote {path}")
    return 0


def sample_and_score(args: argparse.Namespace, problems: Sequence[Problem]) -> dict[str, Any]:
    """Samples and scores what the folder lacks, then its figures."""
    torch.set_num_threads(args.threads)  # the value heads' transformers forwards
    config = SpecsConfig(n=args.n, temperature=0.7, delimiter="\n\n", max_step_tokens=64, seed=args.seed)
    budget = Budget(max_steps=12, max_new_tokens=512)
    with bench.exclusive(args.out):
        bench.check_settings(args.out, sampling_settings("tune", config, budget, {
            "draft": DRAFT, "target": TARGET, "backend": BACKEND, "sampler": "best_of_n:draft",
            "n_threads": args.threads}))
        draft = load_language_model(DRAFT, backend=BACKEND, n_threads=args.threads)
        sample_all(draft, problems, config, budget, args.out)
        target = load_language_model(TARGET, backend=BACKEND, n_threads=args.threads)
        if draft.tokenizer_fingerprint != target.tokenizer_fingerprint:
            raise ConfigError(f"{DRAFT} and {TARGET} tokenize differently: the draft's ids are not the target's")
        for name in args.rewards:
            score_all(name, target, problems, args.out)
        return derive(args.out, [p.id for p in problems], args.rewards)


def score_all(name: str, target: LanguageModel, problems: Sequence[Problem], out: Path) -> None:
    """The prefix rewards of the problems scores.jsonl lacks for this reward (loaded only then)."""
    samples = {row["problem"]: row for row in read_jsonl(out / SAMPLES)}
    done = {row["problem"] for row in read_jsonl(out / SCORES) if row["reward"] == name}
    todo = [(number, problem) for number, problem in enumerate(problems, 1) if problem.id not in done]
    reward = load_reward(name, target) if todo else None
    for number, problem in todo:
        started = time.monotonic()
        rewards = prefix_rewards(reward, target, problem, samples[problem.id]["solutions"])
        append_jsonl(out / SCORES, {"reward": name, "problem": problem.id,
                                    "scoring_s": round(time.monotonic() - started, 1), "rewards": rewards})
        print(f"scored {name} {number}/{len(problems)} {problem.id}", flush=True)


def derive(out: Path, problem_ids: Sequence[str], rewards: Sequence[str]) -> dict[str, Any]:
    """Figures per reward over the problems both files hold (every reward ever scored in
    this folder, not only this run's), and how long sampling and scoring took."""
    samples = {row["problem"]: row for row in read_jsonl(out / SAMPLES)}
    scores = read_jsonl(out / SCORES)
    names = list(dict.fromkeys([*rewards, *(row["reward"] for row in scores)]))
    chosen = [samples[p] for p in problem_ids if p in samples]
    solutions = [s for row in chosen for s in row["solutions"]]
    figures: dict[str, Any] = {
        "split": "tune", "problems": len(chosen), "solutions": len(solutions),
        "solutions_right": sum(s["correct"] for s in solutions),
        "sampling_minutes": round(sum(row["sampling_s"] for row in chosen) / 60, 1),
        "difficulty_step_auroc": _number(difficulty_step_auroc(chosen)),
        "rewards": {},
    }
    for name in names:
        mine = {row["problem"]: row for row in scores if row["reward"] == name}
        rows = [{"solutions": samples[p]["solutions"], "rewards": mine[p]["rewards"]}
                for p in problem_ids if p in samples and p in mine]
        if rows:
            figures["rewards"][name] = {
                **figures_of(rows),
                "scoring_minutes": round(sum(mine[p]["scoring_s"] for p in mine) / 60, 1)}
    return figures


if __name__ == "__main__":
    raise SystemExit(main())
