"""SPECS with two reward heads on the same problems, interleaved problem by problem.

Why: choosing the preset's reward is a paired comparison; running one head's folder after
the other puts minutes of machine drift between the two arms of every pair. Each head keeps
its own `specs bench` folder (same settings file, resumable, summaries as usual), and the
draft and target are loaded once for both (the one model cache).

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/compare_reward_heads.py \\
        --heads - specs-prm-target \\
        --outs benchmarks/results/tune-heads/specs-prm benchmarks/results/tune-heads/specs-prm-target \\
        --limit 24 -- --split tune --backend llama.cpp --n 4 --beam-width 2 --max-steps 12 \\
        --max-new-tokens 512 --max-step-tokens 64

Flags after `--` are `specs bench` flags shared by both heads.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from specs_engine.app import bench, cli  # noqa: E402
from specs_engine.app.data.gsm8k import load_problems  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    shared = argv[argv.index("--") + 1:] if "--" in argv else []
    own = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    own.add_argument("--heads", nargs=2, required=True,
                     help="two reward locations ('-': the preset's own reward)")
    own.add_argument("--outs", nargs=2, type=Path, required=True, help="a bench folder per head")
    own.add_argument("--limit", type=int, required=True, help="first N problems of the split")
    args = own.parse_args(argv[:argv.index("--")] if "--" in argv else argv)
    arms = [cli.parser().parse_args(["bench", "--methods", "specs",
                                     *([] if head == "-" else ["--reward", head]),
                                     "--out", str(out), "--limit", str(args.limit), *shared])
            for head, out in zip(args.heads, args.outs)]
    problems = load_problems(arms[0].split, limit=args.limit)
    with contextlib.ExitStack() as held:
        runs = []
        for arm in arms:
            held.enter_context(bench.exclusive(arm.out))
            config, budget = cli.config_and_budget(arm)
            bench.check_settings(arm.out, bench.settings(arm.split, config, budget, cli.models(arm)))
            runs.append((cli.load_engine(arm), config, budget, arm.out))
        for number, problem in enumerate(problems, 1):
            for engine, config, budget, out in runs:
                bench.run_rows(engine, [problem], [bench.Arm("specs")], config, budget, out)
            print(f"{number}/{len(problems)} {problem.id}", flush=True)
        for _, _, _, out in runs:
            print(bench.markdown(bench.write_summary(out), bench.folder_budget(out)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
