"""Checks that every number the README quotes inside a figures block is in the committed
artefact the block names, at the rounding the README states.

A block in README.md:

    <!-- figures: benchmarks/results/gsm8k/figures.json -->
    ...text or a table...
    <!-- /figures -->

names one or more artefacts (space-separated; `path#key.sub` selects part of a JSON file).
An artefact written by `benchmarks/artefact.write_artefact` contributes its "figures";
another JSON file (the shipped reward head's metadata) contributes the selected part.
Each number in the block (outside `code spans` and a table's header row) must equal some
number of the artefacts when formatted with the README's decimals: "0.87" matches
0.8686; "37.5%" matches 0.375 or 37.5. Artefacts must be committed (tracked by git), and
those that can be recomputed are: `summary.json` and `figures.json` beside a
`results.jsonl` are rebuilt from the rows and compared.

A measured figure that has no artefact yet is marked `<!-- no-artefact: what, and the
command that would measure it -->`; the checker lists these (with --strict they fail).

    .venv/bin/python scripts/check_readme_figures.py [--readme README.md] [--strict]
"""

from __future__ import annotations

import argparse
import json
import math
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

ROOT = Path(__file__).resolve().parent.parent
BLOCK = re.compile(r"<!--\s*figures:\s*(?P<spec>.+?)\s*-->(?P<body>.*?)<!--\s*/figures\s*-->", re.S)
UNBACKED = re.compile(r"<!--\s*no-artefact:\s*(?P<what>.+?)\s*-->", re.S)
NUMBER = re.compile(r"\d+(?:\.\d+)?")
CODE_SPAN = re.compile(r"`[^`]*`")
UNITS = {"x", "s", "ms", "min", "KB", "MB", "GB"}
"""Letters that may follow a figure directly (0.93x, 25KB); any other makes it part of a word."""


@dataclass
class Report:
    errors: list[str] = field(default_factory=list)
    unbacked: list[str] = field(default_factory=list)
    checked: int = 0


def numbers_in(text: str) -> Iterator[tuple[str, bool]]:
    """(number as written, followed by %) for each figure-like number in a block's text.

    Skipped: digits inside words and versions (Qwen2.5, gsm8k-107, 0.32.0), code spans,
    HTML comments and a table's header row. A "-" right after a space or "(" is a sign.
    """
    text = re.sub(r"<!--.*?-->", " ", text, flags=re.S)
    lines = text.splitlines()
    kept = [line for i, line in enumerate(lines)
            if not (i + 1 < len(lines) and re.fullmatch(r"\s*\|[-|: ]+\|\s*", lines[i + 1]))]
    text = CODE_SPAN.sub(" ", "\n".join(kept))
    for match in NUMBER.finditer(text):
        start, end = match.span()
        before = text[start - 1] if start else " "
        after = text[end:end + 2]
        if before.isalnum() or before in "._" or re.match(r"\.\d", after):
            continue
        unit = re.match(r"[A-Za-z]+", text[end:])
        if unit and unit.group() not in UNITS:
            continue  # part of a word or id: 6f14b76, 0.5B, 1.5k-token
        if before == "-" and start >= 2 and text[start - 2].isalnum():
            continue  # an id such as gsm8k-107
        value = match.group()
        if before == "-" and (start < 2 or text[start - 2] in " (\n"):
            value = "-" + value
        yield value, after.startswith("%")


def leaves(data: Any) -> Iterator[float]:
    """Every number in a JSON value (booleans are not figures)."""
    if isinstance(data, bool) or data is None:
        return
    if isinstance(data, (int, float)):
        if math.isfinite(data):
            yield float(data)
    elif isinstance(data, dict):
        for value in data.values():
            yield from leaves(value)
    elif isinstance(data, list):
        for value in data:
            yield from leaves(value)


def matches(written: str, percent: bool, values: list[float]) -> bool:
    """True when some value, rounded to the written decimals, reads as written."""
    decimals = len(written.split(".")[1]) if "." in written else 0
    target = float(written)
    scales = (1.0, 100.0) if percent else (1.0,)
    for value in values:
        for scale in scales:
            shown = round(value * scale, decimals)
            if f"{shown:.{decimals}f}" == f"{target:.{decimals}f}" or (decimals == 0 and shown == target):
                return True
    return False


def load_artefact(spec: str, root: Path, report: Report) -> Any:
    path_text, _, key = spec.partition("#")
    path = root / path_text
    if not path.is_file():
        report.errors.append(f"{path_text}: no such artefact")
        return None
    if not _tracked(path, root):
        report.errors.append(f"{path_text}: not committed (git does not track it)")
    data = json.loads(path.read_text(encoding="utf-8"))
    if isinstance(data, dict) and "figures" in data and "command" in data:
        for needed in ("revision", "machine"):
            if needed not in data:
                report.errors.append(f"{path_text}: artefact records no {needed}")
        data = data["figures"]
    for part in filter(None, key.split(".")):
        if not isinstance(data, dict) or part not in data:
            report.errors.append(f"{spec}: no key {part!r}")
            return None
        data = data[part]
    _check_recomputes(path, root, report)
    return data


def _tracked(path: Path, root: Path) -> bool:
    try:
        done = subprocess.run(["git", "ls-files", "--error-unmatch", str(path.relative_to(root))],
                              cwd=root, capture_output=True, text=True)
    except OSError:
        return True  # no git (an unpacked release): nothing to compare with
    if done.returncode != 0 and "not a git repository" in done.stderr:
        return True
    return done.returncode == 0


def _check_recomputes(path: Path, root: Path, report: Report) -> None:
    """summary.json / figures.json beside committed bench rows must follow from the rows."""
    rows_path = path.parent / "results.jsonl"
    if path.name not in ("summary.json", "figures.json") or not rows_path.is_file():
        return
    saved = list(sys.path)
    sys.path[:0] = [str(root), str(root / "benchmarks")]
    try:
        import gsm8k_figures
        from specs_engine.app.bench import summarise
    finally:
        sys.path[:] = saved
    rows = gsm8k_figures.read_rows(path.parent)
    stored = json.loads(path.read_text(encoding="utf-8"))
    if path.name == "summary.json":
        fresh: Any = summarise(rows)
    else:
        fresh, stored = gsm8k_figures.derive(rows), stored.get("figures")
    if not _same(fresh, stored):
        rel = path.relative_to(root)
        report.errors.append(f"{rel}: does not follow from {rows_path.name} "
                             f"(rerun: python benchmarks/gsm8k_figures.py {rel.parent})")


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, float) or isinstance(b, float):
        return isinstance(a, (int, float)) and isinstance(b, (int, float)) and math.isclose(a, b, rel_tol=1e-9)
    return a == b


def check(readme: Path, root: Path = ROOT) -> Report:
    text = readme.read_text(encoding="utf-8")
    report = Report()
    for block in BLOCK.finditer(text):
        line = text.count("\n", 0, block.start()) + 1
        specs = block.group("spec").split()
        artefacts = [load_artefact(spec, root, report) for spec in specs]
        values = [v for data in artefacts if data is not None for v in leaves(data)]
        for written, percent in numbers_in(block.group("body")):
            report.checked += 1
            if not matches(written, percent, values):
                report.errors.append(f"README line {line} block ({' '.join(specs)}): "
                                     f"{written}{'%' if percent else ''} is in no artefact of the block")
    for mark in UNBACKED.finditer(text):
        line = text.count("\n", 0, mark.start()) + 1
        report.unbacked.append(f"README line {line}: {' '.join(mark.group('what').split())}")
    if not BLOCK.search(text):
        report.errors.append("README has no figures block")
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--readme", type=Path, default=ROOT / "README.md")
    parser.add_argument("--strict", action="store_true", help="figures without an artefact fail too")
    args = parser.parse_args(argv)
    report = check(args.readme, ROOT)
    for error in report.errors:
        print(f"error: {error}")
    for item in report.unbacked:
        print(f"no artefact yet: {item}")
    print(f"{report.checked} README figures checked, {len(report.errors)} errors, "
          f"{len(report.unbacked)} figures without an artefact")
    return 1 if report.errors or (args.strict and report.unbacked) else 0


if __name__ == "__main__":
    sys.exit(main())
