"""The policy's own solutions, written exactly as best-of-n writes them and labelled by
their final answer: the samples verifier_quality.py scores on the tune split and
scripts/sample_outcomes.py collects on training problems to train a reward on.

Why one module: both must sample alike (same rounds, seeds, step ends and budget), or a
head trained on one kind of sample is measured on another. Cached one line per problem in
samples.jsonl, so a stopped run resumes where it stopped.
"""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Sequence

from specs_engine.answers import extract_answer
from specs_engine.app import bench
from specs_engine.app.data.gsm8k import Problem
from specs_engine.config import Budget, SpecsConfig
from specs_engine.models import LanguageModel
from specs_engine.rewards.callable_reward import CallableReward
from specs_engine.search.best_of_n import run_best_of_n
from specs_engine.search.clock import RunClock
from specs_engine.search.roles import Roles
from specs_engine.search.run import SearchRun, question_of

DRAFT, TARGET, BACKEND = "qwen2.5-coder-0.5b", "qwen2.5-coder-1.5b", "llama.cpp"
SAMPLES = "samples.jsonl"

SAMPLING_KNOBS = ("n", "temperature", "top_p", "delimiter", "max_step_tokens", "seed", "structure")
"""The SpecsConfig fields a best-of-n sample depends on."""


def sampling_settings(split: str, config: SpecsConfig, budget: Budget, models: dict) -> dict:
    """bench.settings with only the sampling knobs of the config: a later change to the
    search's defaults (beta, thresholds, start) must not refuse a resume of samples it
    cannot change. (A folder that recorded the whole config still matches: check_settings
    compares the keys recorded now.)"""
    recorded = bench.settings(split, config, budget, models)
    recorded["config"] = {knob: recorded["config"][knob] for knob in SAMPLING_KNOBS}
    return recorded


def sample_problem(policy: LanguageModel, problem: Problem, config: SpecsConfig,
                   budget: Budget) -> list[dict[str, Any]]:
    """config.n solutions by the policy (the draft or the target), written by best-of-n's
    own rounds (a constant reward: the samples do not depend on it), each with its steps'
    texts and token ids and outcome.
    From an empty prefix cache: llama.cpp's logits differ in the last bits when a prefix
    comes from the cache, which changes samples; cleared, a problem's samples depend on
    the seed and thread count only, so a resumed run writes what an uninterrupted one does."""
    policy.clear_cache()
    prompt = problem.messages()
    with ThreadPoolExecutor(max_workers=1) as pool:  # best-of-n runs the policy in the draft's role
        run = SearchRun(Roles(policy, None, CallableReward(lambda q, steps: 0.0, "none"), pool),
                        {"draft": policy.encode_prompt(prompt)}, question_of(prompt), config, budget,
                        pass_ids=True, timer=RunClock(time.monotonic, None, None), slots=config.n)
        run_best_of_n(run, "draft")
    solutions = []
    for beam in run.completed + run.beams:
        answer = extract_answer(beam.text())
        solutions.append({"steps": beam.texts(), "ids": [list(node.token_ids) for node in beam.chain()],
                          "end": beam.end or run.stop_reason, "answer": answer,
                          "correct": problem.is_correct(answer)})
    return solutions


def sample_all(policy: LanguageModel, problems: Sequence[Problem], config: SpecsConfig,
               budget: Budget, out: Path) -> None:
    """Samples the problems out's samples.jsonl lacks, appending one line per problem."""
    done = {row["problem"] for row in read_jsonl(out / SAMPLES)}
    for number, problem in enumerate(problems, 1):
        if problem.id in done:
            continue
        started = time.monotonic()
        solutions = sample_problem(policy, problem, config, budget)
        append_jsonl(out / SAMPLES, {"problem": problem.id, "reference": problem.answer,
                                     "sampling_s": round(time.monotonic() - started, 1),
                                     "solutions": solutions})
        right = sum(s["correct"] for s in solutions)
        print(f"sampled {number}/{len(problems)} {problem.id}: {right}/{len(solutions)} right", flush=True)


def read_jsonl(path: Path) -> list[dict]:
    """The rows of a JSON-lines file; none when it does not exist yet."""
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def append_jsonl(path: Path, row: dict) -> None:
    with path.open("a", encoding="utf-8") as f:
        f.write(json.dumps(row) + "\n")
