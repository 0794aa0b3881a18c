"""Engine benchmarks on tiny real transformers models, all in one run (prints figures).

1. The engine's own overhead as a share of wall time (goal: under 5%).
2. Target verification time per step at step 1 vs step 8 of one long solution (goal: flat
   within 1.3x, since the accepted prefix's KV cache is reused, not re-prefilled).
3. Deadline overrun for latency budgets of 0.5, 1 and 2 s (goal: p95 under 10% of budget).

Usage: HF_HUB_OFFLINE=1 python benchmarks/engine_bench.py [--runs 10] [--out DIR]
Writes the figures, the goals and the settings to DIR/engine_bench.json (benchmarks/artefact.py;
default DIR: benchmarks/results), the file the README's engine figures name.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks")]  # the repository root (tests.helpers), artefact

from artefact import RESULTS, write_artefact  # noqa: E402

from tests.helpers.tiny_models import build_causal_lm, build_tokenizer  # noqa: E402

from specs_engine import Budget, SpecsConfig, SpecsEngine  # noqa: E402
from specs_engine.backends.hf.lm import TransformersLM  # noqa: E402
from specs_engine.backends.hf.value_head import ValueHeadPRM  # noqa: E402

PROMPT = "Ann has 3 apples and buys 4 more. How many apples does Ann have?"


def build_engine(root: Path, endless: bool = False) -> SpecsEngine:
    """A draft (hidden 64) and a 4x wider target sharing one tokenizer, and a value-head
    PRM; `endless` wraps draft and target in Endless."""
    tokenizer = build_tokenizer()
    draft_dir = build_causal_lm(root / "draft", seed=0, hidden=64, tokenizer=tokenizer)
    target_dir = build_causal_lm(root / "target", seed=1, hidden=256, tokenizer=tokenizer)
    base = TransformersLM.from_pretrained(draft_dir, dtype="float32")
    reward_dir = ValueHeadPRM.untrained(base).save_head(root / "reward", base=str(draft_dir))
    engine = SpecsEngine.from_pretrained(
        draft=str(draft_dir), target=str(target_dir), reward=str(reward_dir), dtype="float32"
    )
    if endless:
        engine = SpecsEngine(Endless(engine.draft), Endless(engine.target), engine.reward)
    return engine


class Endless:
    """Wraps a model so its solutions never end by themselves: EOS becomes a cut step and
    answer markers ('#', 'boxed') are dropped from the text (token ids are unchanged, so
    target scoring is untouched). Then a latency budget, not the end of a solution,
    ends the search, which is what the deadline and long-solution figures need."""

    def __init__(self, model: TransformersLM):
        self.model = model

    def __getattr__(self, name: str):
        return getattr(self.model, name)

    def propose(self, prefixes, num_candidates, params):
        return [
            [replace(c, text=c.text.replace("#", "").replace("boxed", ""),
                     finish_reason="length" if c.finish_reason == "eos" else c.finish_reason)
             for c in candidates]
            for candidates in self.model.propose(prefixes, num_candidates, params)
        ]


class TimedScores:
    """Wraps the target to time each verification prefill and count what it prefilled."""

    def __init__(self, model: TransformersLM):
        self.model, self.calls = model, []

    def __getattr__(self, name: str):
        return getattr(self.model, name)

    def score(self, prefixes, continuations, **kwargs):
        prefilled, started = self.model.prefill_tokens, time.perf_counter()
        out = self.model.score(prefixes, continuations, **kwargs)
        seconds = time.perf_counter() - started
        self.calls.append((len(prefixes[0]), self.model.prefill_tokens - prefilled, seconds))
        return out


def overhead_share(engine: SpecsEngine, runs: int) -> dict:
    shares, walls = [], []
    for seed in range(runs):
        result = engine.generate(PROMPT, config=SpecsConfig(seed=seed), budget=Budget(max_steps=12))
        shares.append(result.stats.overhead_s / result.stats.wall_s)
        walls.append(result.stats.wall_s)
    print(f"overhead share of wall time: mean {statistics.mean(shares):.1%}, "
          f"max {max(shares):.1%} over {runs} runs (mean wall {statistics.mean(walls):.3f} s)")
    return {"mean_pct": 100 * statistics.mean(shares), "max_pct": 100 * max(shares),
            "runs": runs, "mean_wall_s": statistics.mean(walls)}


def verification_by_step(engine: SpecsEngine, cache_size: int, solutions: int = 8) -> dict:
    """Accept every draft step (threshold -inf, tau 0) so each step is one verification;
    cache_size=0 turns the target's prefix cache off, for comparison."""
    target = engine.target.model
    timed = TimedScores(Endless(TransformersLM(target.model, target.tokenizer, cache_size=cache_size)))
    probe = SpecsEngine(engine.draft, timed, engine.reward)
    config = SpecsConfig(tau=0.0, accept_threshold=float("-inf"), max_step_tokens=24)
    steps: dict[int, list[tuple[int, int, float]]] = {1: [], 8: []}
    for seed in range(solutions):
        timed.calls.clear()
        probe.generate(PROMPT, config=config.with_overrides(seed=seed),
                       budget=Budget(max_steps=9, max_new_tokens=2000))
        for step in steps:
            steps[step].append(timed.calls[step - 1])
    cells, figures = [], {"solutions": solutions, "compared_steps": [1, 8]}
    for step, calls in steps.items():
        prefix, prefilled, seconds = (statistics.median(c[i] for c in calls) for i in range(3))
        cells.append(seconds)
        figures[f"step_{step}"] = {"ms": seconds * 1e3, "prefix_tokens": prefix, "prefilled_tokens": prefilled}
        print(f"  cache {'on ' if cache_size else 'off'} step {step}: {seconds * 1e3:6.2f} ms, "
              f"prefix {prefix:.0f} tokens, prefilled {prefilled:.0f}")
    print(f"target verification step 8 / step 1 with the cache {'on' if cache_size else 'off'}: "
          f"{cells[1] / cells[0]:.2f}x (median of {solutions} solutions)")
    return {**figures, "step_8_over_step_1": cells[1] / cells[0]}


def deadline_overrun(engine: SpecsEngine, runs: int) -> dict:
    config = SpecsConfig(max_step_tokens=64)
    figures = {}
    budget_steps = Budget(max_steps=10_000, max_new_tokens=100_000)
    for latency in (0.5, 1.0, 2.0):
        overruns = []
        for seed in range(runs):
            started = time.monotonic()
            result = engine.generate(
                PROMPT, config=config.with_overrides(seed=seed),
                budget=Budget(latency_s=latency, max_steps=budget_steps.max_steps,
                              max_new_tokens=budget_steps.max_new_tokens),
            )
            wall = time.monotonic() - started
            if result.stop_reason == "latency":
                overruns.append(max(wall - latency, 0.0))
        figures[f"budget_{latency}s"] = {"budget_s": latency, "runs": runs, "cut_by_deadline": len(overruns)}
        if not overruns:
            print(f"budget {latency} s: every run finished before the deadline")
            continue
        overruns.sort()
        p95 = overruns[min(len(overruns) - 1, int(0.95 * len(overruns)))]
        print(f"budget {latency} s: {len(overruns)}/{runs} runs hit the deadline; overrun "
              f"p50 {statistics.median(overruns) * 1e3:.1f} ms, p95 {p95 * 1e3:.1f} ms "
              f"({p95 / latency:.1%} of the budget)")
        figures[f"budget_{latency}s"].update(p50_ms=statistics.median(overruns) * 1e3, p95_ms=p95 * 1e3,
                                             p95_pct=100 * p95 / latency)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--out", type=Path, default=RESULTS, help="where engine_bench.json goes")
    args = parser.parse_args()
    figures: dict = {
        "goals": {"overhead_pct": 5, "verification_ratio": 1.3, "overrun_p95_pct": 10},
        "models": {"draft_hidden": 64, "target_hidden": 256, "layers": 2},
    }
    with tempfile.TemporaryDirectory() as root:
        engine = build_engine(Path(root) / "default")
        engine.generate(PROMPT, budget=Budget(max_steps=2))  # warm-up
        figures["overhead"] = overhead_share(engine, args.runs)
        endless = build_engine(Path(root) / "endless", endless=True)
        figures["verification_cache_on"] = verification_by_step(endless, cache_size=16)
        figures["verification_cache_off"] = verification_by_step(endless, cache_size=0)
        figures["deadline"] = deadline_overrun(endless, args.runs)
    print(f"wrote {write_artefact('engine_bench', figures, out_dir=args.out)}")


if __name__ == "__main__":
    main()
