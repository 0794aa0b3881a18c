"""Engine benchmarks on tiny real transformers models, all in one run (prints figures).

1. The engine's own overhead as a share of wall time (goal: under 5%).
2. Target verification time per step at step 1 vs step 8 of one long solution (goal: flat
   within 1.3x, since the accepted prefix's KV cache is reused, not re-prefilled).
3. Deadline overrun for latency budgets of 0.5, 1 and 2 s (goal: p95 under 10% of budget).

Usage: HF_HUB_OFFLINE=1 python benchmarks/engine_bench.py [--runs 10]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from tiny_models import build_causal_lm, build_tokenizer  # noqa: E402

from specs_engine import Budget, SpecsConfig, SpecsEngine  # noqa: E402
from specs_engine.backends.transformers import TransformersLM  # noqa: E402
from specs_engine.rewards.value_head import ValueHeadPRM  # noqa: E402

PROMPT = "Ann has 3 apples and buys 4 more. How many apples does Ann have?"


def build_engine(root: Path, eos_bias: float | None = None) -> SpecsEngine:
    """A draft (hidden 64) and a 4x wider target sharing one tokenizer, and a value-head
    PRM. eos_bias overrides the tiny models' pull toward EOS (negative: they rarely stop,
    so a latency budget, not the end of the solution, ends the search)."""
    tokenizer = build_tokenizer()
    draft_dir = build_causal_lm(root / "draft", seed=0, hidden=64, tokenizer=tokenizer)
    target_dir = build_causal_lm(root / "target", seed=1, hidden=256, tokenizer=tokenizer)
    if eos_bias is not None:
        for directory in (draft_dir, target_dir):
            set_eos_bias(directory, eos_bias)
    base = TransformersLM.from_pretrained(draft_dir, dtype="float32")
    reward_dir = ValueHeadPRM.untrained(base).save_head(root / "reward", base=str(draft_dir))
    return SpecsEngine.from_pretrained(
        draft=str(draft_dir), target=str(target_dir), reward=str(reward_dir), dtype="float32"
    )


def set_eos_bias(directory: Path, bias: float) -> None:
    """Rewrites a tiny model's lm_head row for EOS (see tiny_models._bias_toward)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(directory, dtype=torch.float32)
    eos = AutoTokenizer.from_pretrained(directory).eos_token_id
    with torch.no_grad():
        model.get_output_embeddings().weight[eos, 0] = bias
    model.save_pretrained(directory)


class TimedScores:
    """Wraps the target to time each verification prefill and note its prefix length."""

    def __init__(self, model: TransformersLM):
        self.model, self.calls = model, []

    def __getattr__(self, name: str):
        return getattr(self.model, name)

    def score(self, prefixes, continuations, **kwargs):
        started = time.perf_counter()
        out = self.model.score(prefixes, continuations, **kwargs)
        self.calls.append((len(prefixes[0]), time.perf_counter() - started))
        return out


def overhead_share(engine: SpecsEngine, runs: int) -> None:
    shares, walls = [], []
    for seed in range(runs):
        result = engine.generate(PROMPT, config=SpecsConfig(seed=seed), budget=Budget(max_steps=12))
        shares.append(result.stats.overhead_s / result.stats.wall_s)
        walls.append(result.stats.wall_s)
    print(f"overhead share of wall time: mean {statistics.mean(shares):.1%}, "
          f"max {max(shares):.1%} over {runs} runs (mean wall {statistics.mean(walls):.3f} s)")


def verification_by_step(engine: SpecsEngine) -> None:
    """Accept every draft step (threshold -inf, tau 0) so each step is one verification."""
    timed = TimedScores(engine.target)
    probe = SpecsEngine(engine.draft, timed, engine.reward)
    config = SpecsConfig(tau=0.0, accept_threshold=float("-inf"), max_step_tokens=24)
    per_step: dict[int, list[float]] = {}
    prefixes: dict[int, list[int]] = {}
    for seed in range(40):
        timed.calls.clear()
        result = probe.generate(PROMPT, config=config.with_overrides(seed=seed),
                                budget=Budget(max_steps=10, max_new_tokens=2000))
        if len(timed.calls) < 8:
            continue
        for step, (prefix_len, seconds) in enumerate(timed.calls[:8], start=1):
            per_step.setdefault(step, []).append(seconds)
            prefixes.setdefault(step, []).append(prefix_len)
        if len(per_step.get(8, [])) >= 5:
            break
    if 8 not in per_step:
        print("verification by step: no solution reached 8 steps")
        return
    first, eighth = statistics.median(per_step[1]), statistics.median(per_step[8])
    print(f"target verification per step: step 1 {first * 1e3:.2f} ms (prefix "
          f"{statistics.median(prefixes[1]):.0f} tokens), step 8 {eighth * 1e3:.2f} ms (prefix "
          f"{statistics.median(prefixes[8]):.0f} tokens): ratio {eighth / first:.2f}x "
          f"over {len(per_step[8])} solutions")


def deadline_overrun(engine: SpecsEngine, runs: int) -> None:
    config = SpecsConfig(max_step_tokens=64)
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
        if not overruns:
            print(f"budget {latency} s: every run finished before the deadline")
            continue
        overruns.sort()
        p95 = overruns[min(len(overruns) - 1, int(0.95 * len(overruns)))]
        print(f"budget {latency} s: {len(overruns)}/{runs} runs hit the deadline; overrun "
              f"p50 {statistics.median(overruns) * 1e3:.1f} ms, p95 {p95 * 1e3:.1f} ms "
              f"({p95 / latency:.1%} of the budget)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as root:
        engine = build_engine(Path(root) / "default")
        engine.generate(PROMPT, budget=Budget(max_steps=2))  # warm-up
        overhead_share(engine, args.runs)
        verification_by_step(build_engine(Path(root) / "long", eos_bias=-10.0))
        deadline_overrun(build_engine(Path(root) / "long", eos_bias=-10.0), args.runs)


if __name__ == "__main__":
    main()
