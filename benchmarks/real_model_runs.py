"""The README's real-model figures in one artefact: the `specs run` sample, the 5 s / 15 s
deadline runs, the draft's and target's time per decoding step at batch 4, and (with
--fresh-cache) the preset's one-time conversion and load times.

Why: these figures come from the default preset on the user's path (`specs run`), so the
runs go through the CLI itself; its printed output is kept whole for the README sample.
Minutes on 2 CPU cores; run on a quiet machine:

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/real_model_runs.py --fresh-cache

writes benchmarks/results/real_model_runs.json (--out DIR elsewhere). Extra arguments after
`--` go to every `specs run` (e.g. `-- --draft D --target T --reward R` for other models).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks")]

from artefact import RESULTS, write_artefact  # noqa: E402

from specs_engine import sources  # noqa: E402
from specs_engine.app import cli  # noqa: E402

QUESTION = ("Natalia sold clips to 48 of her friends in April, and then she sold half as many "
            "clips in May. How many clips did Natalia sell altogether in April and May?")
RUNS = {"sample": [], "budget_5s": ["--budget-s", "5"], "budget_15s": ["--budget-s", "15"]}


class Tee(io.StringIO):
    """Keeps what the CLI prints and still shows it."""

    def write(self, text: str) -> int:
        sys.__stdout__.write(text)
        return super().write(text)


def run_cli(flags: list[str]) -> dict[str, Any]:
    """One `specs run`, its output, and the result's figures (read where the CLI reports)."""
    seen: dict[str, Any] = {}
    real_report, real_load = cli.report, cli.load_engine

    def report(result):
        seen["result"] = result
        real_report(result)

    def load_engine(args):
        started = time.perf_counter()
        engine = real_load(args)
        seen["load_s"] = time.perf_counter() - started
        return engine

    out = Tee()
    cli.report, cli.load_engine = report, load_engine
    try:
        with contextlib.redirect_stdout(out):
            code = cli.main(["run", QUESTION, *flags])
    finally:
        cli.report, cli.load_engine = real_report, real_load
    if code != 0 or "result" not in seen:
        raise SystemExit(f"specs run {' '.join(flags)} failed with exit code {code}")
    return {"flags": flags, "output": out.getvalue(), "load_s": seen["load_s"], **_figures(seen["result"])}


def _figures(result) -> dict[str, Any]:
    s = result.stats
    return {
        "answer": result.answer, "stop_reason": result.stop_reason, "budget_exhausted": result.budget_exhausted,
        "wall_s": s.wall_s, "draft_s": s.draft_s, "target_s": s.target_s, "reward_s": s.reward_s,
        "overhead_s": s.overhead_s, "steps_from_draft": s.steps_from_draft,
        "steps_from_target": s.steps_from_target, "draft_rounds": s.draft_rounds,
        "draft_rounds_rejected": s.draft_rounds_rejected,
        "steps": [{"source": st.source, "reward": st.reward, "elapsed_s": st.elapsed_s, "tokens": st.tokens}
                  for st in result.steps],
    }


def preset_cache_times() -> dict[str, Any]:
    """Seconds to assemble, check and convert each preset model into an empty cache, then to
    load it from there (the same resolve the engine does)."""
    from specs_engine.backends.hf.lm import TransformersLM

    times = {}
    for name in sources.resolve_preset(cli.DEFAULT_PRESET).values():
        started = time.perf_counter()
        path = sources.resolve(name).load_target
        converted = time.perf_counter() - started
        entry = {"build_s": converted}
        if name not in sources.ASSETS:  # reward heads are tensors, not models to load
            started = time.perf_counter()
            TransformersLM.from_pretrained(path)
            entry["load_s"] = time.perf_counter() - started
        times[name] = entry
    return times


def preset_locations() -> dict[str, str]:
    """Where the default preset's draft and target load from (converted on first use)."""
    roles = sources.resolve_preset(cli.DEFAULT_PRESET)
    return {role: sources.resolve(roles[role]).load_target for role in ("draft", "target")}


def decode_ms_per_step(locations: dict[str, str], batch: int = 4, tokens: int = 64,
                       repeats: int = 3) -> dict[str, Any]:
    """Milliseconds per generated token for the draft and the target proposing `batch`
    candidates at once (the median of `repeats` rounds of `tokens` tokens, prefill included)."""
    import statistics

    from specs_engine.backends.hf.lm import TransformersLM
    from specs_engine.models import ProposalParams

    params = ProposalParams(delimiter="\x00never", max_new_tokens=tokens, temperature=0.7, seed=0)
    out: dict[str, Any] = {"batch": batch, "tokens": tokens}
    for role, location in locations.items():
        lm = TransformersLM.from_pretrained(location, cache_size=0)
        prompt = lm.encode_prompt([{"role": "user", "content": QUESTION}])
        rounds = []
        for _ in range(repeats):
            started = time.perf_counter()
            [cands] = lm.propose([prompt], batch, params)
            rounds.append((time.perf_counter() - started) * 1e3 / max(len(c.token_ids) for c in cands))
        out[role] = {"model": str(location), "ms_per_step": statistics.median(rounds)}
    out["target_over_draft"] = out["target"]["ms_per_step"] / out["draft"]["ms_per_step"]
    return out


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    extra = argv[argv.index("--") + 1:] if "--" in argv else []
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--fresh-cache", action="store_true",
                        help="time the preset's conversion into an empty $SPECS_CACHE first")
    parser.add_argument("--runs", nargs="+", choices=sorted(RUNS), default=list(RUNS))
    parser.add_argument("--no-decode-timing", action="store_true",
                        help="skip the per-step decode timing of the preset's draft and target")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv[:argv.index("--")] if "--" in argv else argv)
    figures: dict[str, Any] = {"question": QUESTION}
    with tempfile.TemporaryDirectory() as cache:
        if args.fresh_cache:
            os.environ["SPECS_CACHE"] = cache
            figures["preset_cache"] = preset_cache_times()
        for name in args.runs:
            figures[name] = run_cli(RUNS[name] + extra)
        if not args.no_decode_timing:
            figures["decode"] = decode_ms_per_step(preset_locations())
    print(f"wrote {write_artefact('real_model_runs', figures, out_dir=args.out)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
