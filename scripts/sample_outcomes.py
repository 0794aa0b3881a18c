"""Sample the policy's own solutions on TRAINING problems, each labelled by its outcome:
the data of an outcome-supervised verifier (Cobbe et al. 2021), the probe's next step.

Why: the probe trained on reference steps against one-number-changed copies ranks the
policy's own steps at AUROC 0.64 on tune (benchmarks/results/verifier_quality): it learned
local arithmetic checks, while the draft's real mistakes are wrong plans and misread
questions. Solutions the draft (or target) writes itself, labelled by whether their final
answer is right, carry exactly those mistakes.

The problems are train_reward.training_problems' (the GSM8K train split, then `--generated`
problems of our own generator): never tune or test, never GSM-Symbolic variants. Each
problem's solutions are written as verifier_quality writes the tune split's (best-of-n's own
rounds from an empty prefix cache, the same step ends and budget), so a probe trained here
is measured there on the same kind of data. Resumable: one line per problem in
samples.jsonl under --out, a rerun skips what it holds; one --seed reproduces it.

    HF_HUB_OFFLINE=1 nohup nice .venv/bin/python scripts/sample_outcomes.py --policy draft \\
        --generated 400 > /work/logs/outcomes.log 2>&1 &
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks"), str(ROOT / "scripts")]

import torch  # noqa: E402
from artefact import RESULTS  # noqa: E402
from train_reward import training_problems  # noqa: E402
from policy_samples import BACKEND, DRAFT, TARGET, sample_all, sampling_settings  # noqa: E402

from specs_engine.app import bench  # noqa: E402
from specs_engine.backends import load_language_model  # noqa: E402
from specs_engine.config import Budget, SpecsConfig  # noqa: E402

POLICIES = {"draft": DRAFT, "target": TARGET}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--policy", choices=sorted(POLICIES), default="draft",
                        help="which model writes the solutions")
    parser.add_argument("--generated", type=int, default=0,
                        help="problems of our own generator after the GSM8K train split")
    parser.add_argument("--n", type=int, default=4, help="solutions per problem")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=None,
                        help="default benchmarks/results/outcome-samples/POLICY")
    args = parser.parse_args(argv)
    out = args.out or RESULTS / "outcome-samples" / args.policy
    torch.set_num_threads(args.threads)
    config = SpecsConfig(n=args.n, temperature=0.7, delimiter="\n\n", max_step_tokens=64, seed=args.seed)
    budget = Budget(max_steps=12, max_new_tokens=512)
    problems = training_problems(None, args.generated, args.seed)["train"]
    with bench.exclusive(out):
        bench.check_settings(out, sampling_settings("train", config, budget, {
            "policy": POLICIES[args.policy], "backend": BACKEND, "sampler": f"best_of_n:{args.policy}",
            "generator_seed": args.seed, "n_threads": args.threads}))
        model = load_language_model(POLICIES[args.policy], backend=BACKEND, n_threads=args.threads)
        sample_all(model, problems, config, budget, out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
