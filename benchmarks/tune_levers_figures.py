"""The tune-split figures behind the default beta / accept_threshold (issue 11 part 4).

Each folder of benchmarks/results/tune-levers holds SPECS at one (beta, accept_threshold);
`default` also holds target beam search and greedy:target, the references each setting's
solved problems are compared with problem by problem (their times are not comparable: see
QUIET). No model runs here: every number is derived from the committed rows.

    .venv/bin/python benchmarks/tune_levers_figures.py
"""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks")]

from artefact import write_artefact  # noqa: E402
from gsm8k_figures import read_rows  # noqa: E402

from specs_engine.app.latency_stats import paired_ratio  # noqa: E402

FOLDER = ROOT / "benchmarks" / "results" / "tune-levers"
REFERENCES = ("beam_search:target", "greedy:target")
PAIRED = {"target-candidates-1": "target-candidates-n", "probe-outcome": "probe-target",
          "start-draft": "start-target", "ab-probe-outcome-thr5": "ab-probe-target",
          "knobs-frontier": "knobs-default"}
"""A folder -> the folder it was run in turn with, problem by problem (tune_levers.sh's
stages that use `paired`): its times are compared with that one's, paired."""
QUIET = "default-quiet"
"""beta 4 / -6 again, on the first 12 problems, on the revision the other settings ran on
(the `default` folder ran on the one before, which decoded beams one after another, while
short test runs shared the machine: its times are not comparable with the others')."""


def setting(folder: Path) -> dict[str, Any]:
    """The knobs a folder's rows ran with; the reward by name, the preset's included
    (folders record what the preset stood for in preset_roles)."""
    settings = json.loads((folder / "settings.json").read_text())
    config, models = settings["config"], settings["models"]
    return {"beta": config["beta"], "accept_threshold": config["accept_threshold"],
            "target_candidates": config.get("target_candidates"), "start": config.get("start", "target"),
            "beam_width": config["beam_width"], "max_step_tokens": config["max_step_tokens"],
            "reward": models["reward"] or models.get("preset_roles", {}).get("reward", "the preset's")}


def arm_figures(rows: list[dict], references: dict[str, dict[str, dict]]) -> dict[str, Any]:
    """Solved, time and draft use of one arm, and its paired latency against each reference."""
    steps = [s for r in rows for s in r.get("steps") or []]
    out: dict[str, Any] = {
        "problems": len(rows),
        "solved": sum(bool(r["correct"]) for r in rows),
        "mean_s": sum(r["wall_s"] for r in rows) / len(rows),
        "draft_s": sum(r["draft_s"] for r in rows) / len(rows),
        "target_s": sum(r["target_s"] for r in rows) / len(rows),
        "draft_steps_share": sum(s[0] == "draft" for s in steps) / max(len(steps), 1),
        "draft_rounds": sum(r.get("draft_rounds") or 0 for r in rows),
        "draft_rounds_rejected": sum(r.get("draft_rounds_rejected") or 0 for r in rows),
    }
    for name, reference in references.items():
        pairs = [(r["wall_s"], reference[r["problem"]]["wall_s"]) for r in rows if r["problem"] in reference]
        stats = paired_ratio(pairs)
        out[f"vs {name}"] = dataclasses.asdict(stats) if stats else None
        out[f"solved_where_{name}_failed"] = sum(
            bool(r["correct"]) and not reference[r["problem"]]["correct"] for r in rows if r["problem"] in reference)
        out[f"failed_where_{name}_solved"] = sum(
            not r["correct"] and bool(reference[r["problem"]]["correct"]) for r in rows if r["problem"] in reference)
    return out


def derive(folder: Path = FOLDER) -> dict[str, Any]:
    base = read_rows(folder / "default")
    references = {name: {r["problem"]: r for r in base if r["arm"] == name} for name in REFERENCES}
    figures: dict[str, Any] = {"references": {
        name: arm_figures(list(rows.values()), {k: v for k, v in references.items() if k != name})
        for name, rows in references.items()}}
    quiet = {r["problem"] for r in read_rows(folder / QUIET)}
    for sub in sorted(p for p in folder.iterdir() if (p / "results.jsonl").exists()):
        specs = [r for r in read_rows(sub) if r["arm"] == "specs"]
        partner = {PAIRED[sub.name]: {r["problem"]: r for r in read_rows(folder / PAIRED[sub.name])}} \
            if sub.name in PAIRED else {}
        figures[sub.name] = {**setting(sub), **arm_figures(specs, {**references, **partner})}
        figures[sub.name][f"on the {QUIET} problems"] = arm_figures([r for r in specs if r["problem"] in quiet], {})
    return figures


def main() -> int:
    path = write_artefact("figures", derive(), out_dir=FOLDER,
                          notes="derived from the results.jsonl of each folder here; no model ran")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
