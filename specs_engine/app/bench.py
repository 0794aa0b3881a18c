"""Run search methods over GSM8K problems and summarise accuracy against latency.

Rows are appended to a JSONL file and flushed one problem at a time, so an interrupted
run keeps what it finished and a rerun with the same output folder resumes where it
stopped. Every method sees the same problems, the same models and the same n. The folder
remembers the settings its rows were run with (settings.json), so a rerun with other
knobs is refused instead of mixing two settings into one table. A lock file refuses a
second run on a folder while one is writing it; a row torn by a kill is cut off before
the next append, and a (method, problem) pair is counted once however often it appears.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import math
import os
import statistics
import threading
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator, Optional

from specs_engine.config import Budget, SpecsConfig
from specs_engine.engine import SpecsEngine
from specs_engine.errors import ConfigError
from specs_engine.app.latency_stats import paired_ratio, paired_walls
from specs_engine.methods import METHODS, MODEL_ROLES, REGISTRY

ROWS = "results.jsonl"
SUMMARY = "summary.json"
SETTINGS = "settings.json"
TABLE = "summary.md"
PLOT = "accuracy_latency.png"
LOCK = ".bench.lock"


@dataclass(frozen=True)
class Arm:
    """One compared setting: a method and, for single-model methods, which model."""

    method: str
    model: str = "target"

    @property
    def label(self) -> str:
        single = REGISTRY[self.method].takes_model
        return f"{self.method}:{self.model}" if single else self.method

    @classmethod
    def parse(cls, text: str) -> Arm:
        """'specs', 'rsd', 'beam_search:target', 'greedy:draft', ...; an unknown method or
        model is refused by the --methods entry that names it."""
        method, _, model = text.partition(":")
        if method not in METHODS or (model or "target") not in MODEL_ROLES:
            raise ConfigError(f"--methods entry {text!r}: use method[:{'|'.join(MODEL_ROLES)}], "
                              f"method one of {', '.join(METHODS)}")
        return cls(method, model or "target")


def settings(split: str, config: SpecsConfig, budget: Budget, models: dict) -> dict:
    """Everything that changes a row's outcome, as JSON values. The methods and the
    problem limit are left out: adding arms or problems to a folder is a resume."""
    return json.loads(json.dumps(
        {"split": split, "config": asdict(config), "budget": asdict(budget), "models": models}
    ))


def check_settings(out: Path, current: dict) -> None:
    """Records the settings of a new folder; refuses a folder run with other ones."""
    path = out / SETTINGS
    if not path.exists():
        out.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(current, indent=2), encoding="utf-8")
        return
    before = json.loads(path.read_text(encoding="utf-8"))
    changed = [
        f"{group}.{key}: {before.get(group, {}).get(key)!r} -> {value!r}"
        for group, values in current.items() if isinstance(values, dict)
        for key, value in values.items() if before.get(group, {}).get(key) != value
    ]
    if before.get("split") != current["split"]:
        changed.insert(0, f"split: {before.get('split')!r} -> {current['split']!r}")
    if changed:
        raise ConfigError(
            f"{out} holds rows run with other settings ({'; '.join(changed)}); "
            "rerun with the same flags to resume, or give another --out"
        )


_held: dict[Path, list] = {}
"""Folders this process holds: path -> [holding thread, depth, lock file]."""
_held_lock = threading.Lock()


@contextlib.contextmanager
def exclusive(out: Path) -> Iterator[None]:
    """Only one run writes a folder at a time (across processes and threads); re-entered
    freely by the thread holding it. A second run is refused, not queued: it would redo
    the same rows."""
    key, me = out.resolve(), threading.get_ident()
    with _held_lock:
        if key not in _held:
            _held[key] = [me, 1, _lock_file(out)]
        elif _held[key][0] == me:
            _held[key][1] += 1
        else:
            _refuse(out, "another thread of this process")
    try:
        yield
    finally:
        with _held_lock:
            _held[key][1] -= 1
            if _held[key][1] == 0:
                _held.pop(key)[2].close()  # closing releases the flock


def _lock_file(out: Path) -> Any:
    out.mkdir(parents=True, exist_ok=True)
    handle = open(out / LOCK, "a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "unknown"
        handle.close()
        _refuse(out, f"pid {holder}")
    handle.truncate(0)
    handle.write(str(os.getpid()))
    handle.flush()
    return handle


def _refuse(out: Path, holder: str) -> Any:
    raise ConfigError(
        f"another `specs bench` ({holder}) is writing to {out}; wait for it to finish or "
        "give another --out"
    )


def read_rows(path: Path) -> list[dict]:
    """The rows of a rows file, each (arm, problem) once (the first); a line that is not
    a whole JSON row (torn by a kill) is skipped."""
    rows, seen = [], set()
    if not path.exists():
        return rows
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            row = json.loads(line)
            key = (row["arm"], row["problem"])
        except (json.JSONDecodeError, TypeError, KeyError):
            continue
        if key not in seen:
            seen.add(key)
            rows.append(row)
    return rows


def done_keys(path: Path) -> set[tuple[str, str]]:
    """(arm, problem id) pairs already in the rows file."""
    return {(row["arm"], row["problem"]) for row in read_rows(path)}


def repair_torn_row(path: Path) -> None:
    """Cuts a last line without its newline (a row torn by a kill), so the next row
    starts on a line of its own; the torn row's problem is simply run again."""
    if not path.exists():
        return
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        with path.open("r+b") as handle:
            handle.truncate(data.rfind(b"\n") + 1)


def run_rows(
    engine: SpecsEngine,
    problems: list,
    arms: list[Arm],
    config: SpecsConfig,
    budget: Budget,
    out: Path,
    progress: Optional[Any] = None,
) -> Path:
    """Runs every arm on every problem not done yet, appending one JSON row each."""
    path = out / ROWS
    with exclusive(out):
        repair_torn_row(path)
        done = done_keys(path)
        _append_rows(engine, problems, arms, config, budget, path, done, progress)
    return path


def _append_rows(engine: SpecsEngine, problems: list, arms: list[Arm], config: SpecsConfig,
                 budget: Budget, path: Path, done: set, progress: Optional[Any]) -> None:
    with path.open("a", encoding="utf-8") as rows:
        for problem in problems:
            for arm in arms:
                if (arm.label, problem.id) not in done:
                    rows.write(json.dumps(run_one(engine, problem, arm, config, budget)) + "\n")
                    rows.flush()
                if progress is not None:
                    progress.update(1)


def run_one(engine: SpecsEngine, problem, arm: Arm, config: SpecsConfig, budget: Budget) -> dict:
    result = engine.generate(problem.messages(), arm.method, config, budget, model=arm.model)
    stats = result.stats
    steps = max(stats.steps_from_draft + stats.steps_from_target, 1)
    return {
        "arm": arm.label, "problem": problem.id, "expected": problem.answer,
        "answer": result.answer, "correct": problem.is_correct(result.answer),
        "wall_s": stats.wall_s, "draft_s": stats.draft_s, "target_s": stats.target_s,
        "reward_s": stats.reward_s, "draft_share": stats.steps_from_draft / steps,
        "budget_exhausted": result.budget_exhausted, "stop_reason": result.stop_reason,
        "text": result.text,
        "steps": [[s.source, s.tokens, s.reward, s.log_ratio] for s in result.steps],
        "draft_rounds": stats.draft_rounds, "draft_rounds_rejected": stats.draft_rounds_rejected,
    }


def summarise(rows: Iterable[dict], reference: str = "beam_search:target") -> list[dict]:
    """Per arm: accuracy with a 95% Wilson interval, mean and p90 latency, latency
    relative to the reference arm (ratio of means, and paired over the problems both ran,
    with a bootstrap interval), and the share of steps the draft wrote."""
    rows = list(rows)
    by_arm: dict[str, list[dict]] = {}
    for row in rows:
        by_arm.setdefault(row["arm"], []).append(row)
    ref_latency = statistics.mean(r["wall_s"] for r in by_arm[reference]) if reference in by_arm else None
    table = []
    for arm, arm_rows in by_arm.items():
        walls = sorted(r["wall_s"] for r in arm_rows)
        correct = sum(r["correct"] for r in arm_rows)
        low, high = wilson(correct, len(arm_rows))
        mean = statistics.mean(walls)
        table.append({
            "arm": arm, "problems": len(arm_rows), "accuracy": correct / len(arm_rows),
            "ci_low": low, "ci_high": high, "mean_s": mean,
            "p90_s": walls[min(len(walls) - 1, math.ceil(0.9 * len(walls)) - 1)],
            "latency_vs_ref": mean / ref_latency if ref_latency else None,
            **_paired(rows, arm, reference),
            "draft_share": statistics.mean(r["draft_share"] for r in arm_rows),
            **_time_split(arm_rows),
        })
    return table


def _paired(rows: list[dict], arm: str, reference: str) -> dict:
    """The arm's latency against the reference's on the same problems (None for the
    reference itself, or with no shared problem)."""
    ratio = None if arm == reference else paired_ratio(paired_walls(rows, arm, reference))
    if ratio is None:
        return {"paired_ratio": None, "paired_ci_low": None, "paired_ci_high": None,
                "paired_median": None, "paired_faster_on": None}
    return {"paired_ratio": ratio.ratio, "paired_ci_low": ratio.ci_low,
            "paired_ci_high": ratio.ci_high, "paired_median": ratio.median_ratio,
            "paired_faster_on": ratio.faster_on}


def _time_split(rows: list[dict]) -> dict:
    """Where an arm's time went, per problem on average: model seconds (target and
    reward overlap in SPECS' verification), steps of the answer, and draft rounds."""
    def mean(key: str) -> float:
        return statistics.mean(r.get(key) or 0 for r in rows)

    return {
        "draft_s": mean("draft_s"), "target_s": mean("target_s"), "reward_s": mean("reward_s"),
        "steps": statistics.mean(len(r.get("steps", [])) for r in rows),
        "draft_rounds": sum(r.get("draft_rounds") or 0 for r in rows),
        "draft_rounds_rejected": sum(r.get("draft_rounds_rejected") or 0 for r in rows),
    }


def wilson(successes: int, total: int, z: float = 1.96) -> tuple[float, float]:
    """95% Wilson score interval: honest at the small n a CPU benchmark affords."""
    if total == 0:
        return 0.0, 0.0
    p = successes / total
    centre = (p + z * z / (2 * total)) / (1 + z * z / total)
    half = z * math.sqrt(p * (1 - p) / total + z * z / (4 * total * total)) / (1 + z * z / total)
    return max(0.0, centre - half), min(1.0, centre + half)


def markdown(table: list[dict], budget: Optional[dict] = None) -> str:
    """The summary as Markdown tables; `budget` (the folder's settings) heads them, since
    a latency only means something next to the deadline it ran under."""
    lines = [f"Budget per problem: {_budget_text(budget)}", ""] if budget is not None else []
    lines += [
        "| method | problems | accuracy (95% CI) | mean s | p90 s | latency vs BS(target) "
        "| paired vs BS(target) (95% CI) | draft steps |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in table:
        relative = f"{r['latency_vs_ref']:.2f}x" if r["latency_vs_ref"] else "-"
        paired = (f"{r['paired_ratio']:.2f}x ({r['paired_ci_low']:.2f}-{r['paired_ci_high']:.2f})"
                  if r.get("paired_ratio") is not None else "-")
        lines.append(
            f"| {r['arm']} | {r['problems']} | {r['accuracy']:.1%} ({r['ci_low']:.0%}-{r['ci_high']:.0%}) "
            f"| {r['mean_s']:.1f} | {r['p90_s']:.1f} | {relative} | {paired} | {r['draft_share']:.0%} |"
        )
    lines += [
        "",
        "| method | draft s | target s | reward s | steps | draft rounds rejected |",
        "|---|---|---|---|---|---|",
    ]
    for r in table:
        lines.append(
            f"| {r['arm']} | {r['draft_s']:.1f} | {r['target_s']:.1f} | {r['reward_s']:.1f} "
            f"| {r['steps']:.1f} | {r['draft_rounds_rejected']}/{r['draft_rounds']} |"
        )
    return "\n".join(lines) + "\n"


def _budget_text(budget: dict) -> str:
    latency = budget.get("latency_s")
    return (f"{'no deadline' if latency is None else f'{latency:g} s'}, "
            f"at most {budget.get('max_steps')} steps and {budget.get('max_new_tokens')} new tokens")


def write_summary(out: Path) -> list[dict]:
    """summary.json, summary.md and (with matplotlib) the accuracy-latency plot."""
    path = out / ROWS
    if not path.exists():
        raise ConfigError(f"no rows at {path}: run `specs bench` first")
    table = summarise(read_rows(path))
    (out / SUMMARY).write_text(json.dumps(table, indent=2), encoding="utf-8")
    (out / TABLE).write_text(markdown(table, folder_budget(out)), encoding="utf-8")
    plot(table, out / PLOT)
    return table


def folder_budget(out: Path) -> Optional[dict]:
    """The budget a folder's rows ran under, from its settings.json (None if it has none)."""
    path = out / SETTINGS
    return json.loads(path.read_text(encoding="utf-8")).get("budget") if path.exists() else None


def plot(table: list[dict], path: Path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    fig, ax = plt.subplots(figsize=(6, 4))
    for r in table:
        err = [[r["accuracy"] - r["ci_low"]], [r["ci_high"] - r["accuracy"]]]
        ax.errorbar(r["mean_s"], r["accuracy"], yerr=err, fmt="o", capsize=4)
        ax.annotate(r["arm"], (r["mean_s"], r["accuracy"]), textcoords="offset points", xytext=(6, 4))
    ax.margins(x=0.3, y=0.1)  # room for the labels
    ax.set_xlabel("mean latency per problem (s)")
    ax.set_ylabel("accuracy")
    ax.set_title("GSM8K: accuracy vs latency")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
