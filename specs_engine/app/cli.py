"""The `specs` command.

    specs run "question"      stream a SPECS solution step by step, then the time split
    specs bench               compare methods on GSM8K; JSONL rows, a table and a plot
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Optional, Sequence

from specs_engine.config import Budget, SpecsConfig, from_settings
from specs_engine.engine import SpecsEngine
from specs_engine.errors import ConfigError, SpecsError
from specs_engine.methods import METHODS, MODEL_ROLES, REGISTRY
from specs_engine.result import FinalEvent, SearchResult

DEFAULT_PRESET = "qwen2.5-coder"
SINGLE_MODEL = [m.name for m in REGISTRY.values() if m.takes_model]
INSTRUCTION = (
    "Solve the problem step by step, in plain sentences (do not write code), one short step "
    "per paragraph. End with the final answer in \\boxed{}."
)


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parser().parse_args(argv)
    try:
        return args.func(args)
    except SpecsError as exc:
        print(f"specs: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\nspecs: interrupted; finished rows are kept, rerun to resume", file=sys.stderr)
        return 130


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="specs", description="SPECS: speculative test-time search")
    sub = top.add_subparsers(required=True, dest="command")
    run = sub.add_parser("run", help="solve one question, streaming each accepted step")
    run.add_argument("question")
    run.add_argument("--method", default="specs", choices=METHODS)
    run.add_argument("--model", default="target", choices=MODEL_ROLES,
                     help=f"the model of single-model methods ({', '.join(SINGLE_MODEL)})")
    run.set_defaults(func=cmd_run)
    bench = sub.add_parser("bench", help="compare methods on GSM8K problems")
    bench.add_argument("--methods", default="specs,beam_search:target,beam_search:draft,rsd",
                       help="comma-separated method[:draft|target] list")
    bench.add_argument("--split", default="test", choices=("train", "tune", "test"))
    bench.add_argument("--limit", type=int, default=None, help="first N problems of the split")
    bench.add_argument("--out", type=Path, default=Path("runs/bench"))
    bench.set_defaults(func=cmd_bench)
    for command in (run, bench):
        models = command.add_argument_group("models")
        models.add_argument("--preset", default=None,
                            help=f"draft/target/reward preset (default {DEFAULT_PRESET} when no model is given)")
        models.add_argument("--draft")
        models.add_argument("--target")
        models.add_argument("--reward")
        models.add_argument("--backend", default=None,
                            help="transformers, llama.cpp, vllm or openai (default: llama.cpp for the "
                                 "preset's GGUFs when llama-cpp-python is installed, else transformers)")
        models.add_argument("--dtype", default="bfloat16")
        knobs = command.add_argument_group("search")
        knobs.add_argument("--n", type=int, default=SpecsConfig.n)
        knobs.add_argument("--beam-width", type=int, default=None, help="default: n (one beam)")
        knobs.add_argument("--beta", type=float, default=SpecsConfig.beta)
        knobs.add_argument("--accept-threshold", type=float, default=SpecsConfig.accept_threshold)
        knobs.add_argument("--tau", type=float, default=SpecsConfig.tau)
        knobs.add_argument("--start", choices=["target", "draft"], default=SpecsConfig.start,
                           help="which model writes SPECS' first step")
        knobs.add_argument("--target-candidates", type=int, default=SpecsConfig.target_candidates,
                           help="candidates per beam in a SPECS target round (default: as the draft)")
        knobs.add_argument("--temperature", type=float, default=SpecsConfig.temperature)
        knobs.add_argument("--max-step-tokens", type=int, default=SpecsConfig.max_step_tokens)
        knobs.add_argument("--seed", type=int, default=0)
        knobs.add_argument("--budget-s", type=float, default=None, help="latency budget per question")
        knobs.add_argument("--max-steps", type=int, default=Budget.max_steps)
        knobs.add_argument("--max-new-tokens", type=int, default=Budget.max_new_tokens)
    return top


def config_and_budget(args: argparse.Namespace) -> tuple[SpecsConfig, Budget]:
    """The search settings, validated (no model is loaded)."""
    return from_settings(dict(
        n=args.n, beam_width=args.beam_width or args.n, beta=args.beta,
        accept_threshold=args.accept_threshold, tau=args.tau, start=args.start,
        target_candidates=args.target_candidates,
        temperature=args.temperature, seed=args.seed, max_step_tokens=args.max_step_tokens,
        latency_s=args.budget_s, max_steps=args.max_steps, max_new_tokens=args.max_new_tokens,
    ))


def models(args: argparse.Namespace) -> dict[str, Optional[str]]:
    """Which models the flags name (the default preset when none is given), and the backend
    that will run them: the one chosen when --backend is not given, so a bench folder
    records the runtime its rows ran on and refuses to mix in rows from another."""
    from specs_engine.backends import choose_backend

    preset = args.preset or (None if args.draft or args.target else DEFAULT_PRESET)
    roles = preset_roles(preset, args.backend)
    locations = [loc for loc in (args.draft or roles.get("draft"), args.target or roles.get("target")) if loc]
    return {"preset": preset, "draft": args.draft, "target": args.target, "reward": args.reward,
            "backend": choose_backend(args.backend, locations, "cpu"), "dtype": args.dtype}


def preset_roles(preset: Optional[str], backend: Optional[str]) -> dict[str, str]:
    """The registry names a preset gives each role ({} for none or an unknown one, which is
    refused at load)."""
    from specs_engine.sources import PRESETS, resolve_preset

    return resolve_preset(preset, backend) if preset in PRESETS else {}


def recorded_models(args: argparse.Namespace) -> dict:
    """models(args) and the models the preset stood for when the rows ran: a preset's reward
    (or draft) may change between versions, and a bench folder resumed after such a change
    must be refused, not mixed."""
    chosen = models(args)
    return {**chosen, "preset_roles": preset_roles(chosen["preset"], chosen["backend"])}


def load_engine(args: argparse.Namespace) -> SpecsEngine:
    """The models the flags name (callers validate the knobs first: no model loads for a
    bad flag)."""
    chosen = models(args)
    print(f"loading models ({chosen['preset'] or 'custom'}) ...", file=sys.stderr)
    engine = SpecsEngine.from_pretrained(**chosen)
    return engine.warm_up() if args.budget_s else engine  # no budget pays for first-call setup


def cmd_run(args: argparse.Namespace) -> int:
    if not args.question.strip():
        raise ConfigError("the question is empty: give the problem to solve as the argument")
    config, budget = config_and_budget(args)
    engine = load_engine(args)
    prompt = [{"role": "user", "content": f"{INSTRUCTION}\n\n{args.question}"}]
    for event in engine.stream(prompt, args.method, config, budget, model=args.model):
        if isinstance(event, FinalEvent):
            if event.delta:
                print(event.delta, end="" if event.delta.endswith("\n") else "\n")
            report(event.result)
        else:
            step = event.step
            reward = "-" if step.reward is None else f"{step.reward:.2f}"
            print(f"--- step {event.index} [{step.source}, reward {reward}, at {step.elapsed_s:.1f} s]")
            print(step.text.rstrip("\n"))
    return 0


def report(result: SearchResult) -> None:
    s = result.stats
    print(f"\nanswer: {result.answer}   ({result.stop_reason}"
          f"{', budget exhausted' if result.budget_exhausted else ''})")
    print(f"time: {s.wall_s:.1f} s = draft {s.draft_s:.1f} + target {s.target_s:.1f} + "
          f"reward {s.reward_s:.1f} (target and reward overlap) + engine {s.overhead_s:.2f}")
    print(f"steps: {s.steps_from_draft} from the draft, {s.steps_from_target} from the target; "
          f"draft rounds rejected {s.draft_rounds_rejected}/{s.draft_rounds}")


def cmd_bench(args: argparse.Namespace) -> int:
    from specs_engine.app import bench
    from specs_engine.app.data.gsm8k import load_problems

    arms = [bench.Arm.parse(a) for a in args.methods.split(",") if a]
    problems = load_problems(args.split, limit=args.limit)
    config, budget = config_and_budget(args)
    with bench.exclusive(args.out):  # a second run on this folder is refused before loading
        bench.check_settings(args.out, bench.settings(args.split, config, budget, recorded_models(args)))
        engine = load_engine(args)
        from tqdm import tqdm

        with tqdm(total=len(problems) * len(arms), desc="bench", unit="run") as progress:
            bench.run_rows(engine, problems, arms, config, budget, args.out, progress)
        table = bench.write_summary(args.out)
    print(bench.markdown(table, bench.folder_budget(args.out)))
    print(f"rows, summary and plot in {args.out}/")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
