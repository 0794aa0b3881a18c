"""The GSM8K figures the README quotes, derived from a `specs bench` folder's committed rows.

Why: the summary table (`summary.json`, written by `specs bench`) holds per-arm means; the
README's prose also cites counts and comparisons (problems solved by one arm alone, the
per-problem latency ratio, the slowest problem, the reward head's AUROC on the rows).
Deriving them here, from `results.jsonl` only, makes every such number recomputable:
`scripts/check_readme_figures.py` reruns `derive` and compares. No model runs.

    .venv/bin/python benchmarks/gsm8k_figures.py benchmarks/results/gsm8k
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks")]

from artefact import write_artefact  # noqa: E402

from specs_engine.app import bench  # noqa: E402

SPECS, REFERENCE, DRAFT_BS = "specs", "beam_search:target", "beam_search:draft"
GOAL_LATENCY = 0.75
"""The goal: target beam search's accuracy at this fraction of its latency or less."""


def read_rows(folder: Path) -> list[dict]:
    """A folder's rows, read as `specs bench` reads them when it resumes."""
    return bench.read_rows(folder / bench.ROWS)


def derive(rows: list[dict]) -> dict[str, Any]:
    """Per-arm counts and means, and SPECS against target beam search when both ran."""
    by_arm: dict[str, list[dict]] = {}
    for row in rows:
        by_arm.setdefault(row["arm"], []).append(row)
    figures: dict[str, Any] = {
        "rows": len(rows),
        "run_minutes": sum(r["wall_s"] for r in rows) / 60,
        "arms": {arm: _arm(arm_rows) for arm, arm_rows in by_arm.items()},
        "summary": {row.pop("arm"): row for row in bench.summarise(rows)},
    }
    if SPECS in by_arm and REFERENCE in by_arm:
        figures["specs_vs_target"] = _versus(by_arm[SPECS], by_arm[REFERENCE])
    figures["reward_auroc_final_step"] = _final_step_auroc(rows)
    return figures


def _arm(rows: list[dict]) -> dict[str, Any]:
    return {
        "problems": len(rows), "solved": sum(bool(r["correct"]) for r in rows),
        "mean_s": statistics.mean(r["wall_s"] for r in rows),
        "draft_rounds": sum(r.get("draft_rounds") or 0 for r in rows),
        "draft_rounds_rejected": sum(r.get("draft_rounds_rejected") or 0 for r in rows),
    }


def _versus(specs: list[dict], reference: list[dict]) -> dict[str, Any]:
    """Latency ratios per problem and overall, the slowest SPECS problem, and who solved what."""
    ref = {r["problem"]: r for r in reference}
    pairs = [(r, ref[r["problem"]]) for r in specs if r["problem"] in ref]
    ratio = statistics.mean(s["wall_s"] for s, _ in pairs) / statistics.mean(t["wall_s"] for _, t in pairs)
    slowest, _ = max(pairs, key=lambda p: p[0]["wall_s"])
    rest = [p for p in pairs if p[0] is not slowest]
    ratio_rest = statistics.mean(s["wall_s"] for s, _ in rest) / statistics.mean(t["wall_s"] for _, t in rest)
    steps = slowest.get("steps", [])
    return {
        "problems": len(pairs),
        "latency_ratio": ratio,
        "goal_latency_ratio": GOAL_LATENCY,
        "short_of_goal": ratio - GOAL_LATENCY,
        "faster_on": sum(s["wall_s"] < t["wall_s"] for s, t in pairs),
        "median_problem_ratio": statistics.median(s["wall_s"] / t["wall_s"] for s, t in pairs),
        "slowest": {
            "problem": slowest["problem"], "problem_number": int(slowest["problem"].rsplit("-", 1)[1]),
            "wall_s": slowest["wall_s"], "steps": len(steps),
            "draft_rounds": slowest.get("draft_rounds"),
            "draft_rounds_rejected": slowest.get("draft_rounds_rejected"),
            "solved_by_specs": bool(slowest["correct"]), "solved_by_target": bool(ref[slowest["problem"]]["correct"]),
        },
        "latency_ratio_without_slowest": ratio_rest,
        "specs_solved": sum(bool(s["correct"]) for s, _ in pairs),
        "target_solved": sum(bool(t["correct"]) for _, t in pairs),
        "specs_alone": sum(bool(s["correct"]) and not t["correct"] for s, t in pairs),
        "target_alone": sum(bool(t["correct"]) and not s["correct"] for s, t in pairs),
    }


def _final_step_auroc(rows: list[dict]) -> dict[str, Any]:
    """How well the reward of a returned solution's last step tells right from wrong."""
    scored = [(r["steps"][-1][2], bool(r["correct"])) for r in rows
              if r.get("steps") and r["steps"][-1][2] is not None]
    pos = [s for s, ok in scored if ok]
    neg = [s for s, ok in scored if not ok]
    wins = sum((p > n) + 0.5 * (p == n) for p in pos for n in neg)
    return {"rows": len(scored), "auroc": wins / (len(pos) * len(neg)) if pos and neg else None}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("folder", type=Path, help="a `specs bench --out` folder with results.jsonl")
    args = parser.parse_args(argv)
    figures = derive(read_rows(args.folder))
    path = write_artefact("figures", figures, out_dir=args.folder,
                          notes="derived from results.jsonl in this folder; no model ran")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
