"""One format for every measured figure the README quotes: a JSON file that says what was
run, on which revision and machine, and what it measured.

Why: a README number is only checkable when the file it came from records the command and
the code it ran; `scripts/check_readme_figures.py` (issue 13) reads these files.
"""

from __future__ import annotations

import json
import os
import platform
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Mapping

RESULTS = Path(__file__).resolve().parent / "results"


def machine_facts() -> dict[str, Any]:
    """What the figures depend on: cores, CPU model, load, Python and library versions."""
    facts: dict[str, Any] = {
        "cores": os.cpu_count(),
        "cpu": _cpu_model(),
        "load_avg_1m": round(os.getloadavg()[0], 2),
        "python": platform.python_version(),
    }
    for lib in ("torch", "transformers", "llama_cpp", "vllm"):
        module = sys.modules.get(lib)
        if module is not None:
            facts[lib] = getattr(module, "__version__", "?")
    return facts


def revision() -> str:
    """The git commit measured, with "+dirty" when the work tree had uncommitted changes."""
    root = Path(__file__).resolve().parent.parent
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, text=True,
                              capture_output=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               cwd=root, text=True, capture_output=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + ("+dirty" if dirty else "")


def write_artefact(name: str, figures: Mapping[str, Any], *, notes: str = "",
                   out_dir: Path = RESULTS) -> Path:
    """Writes `<out_dir>/<name>.json` with the figures and how they were obtained."""
    path = out_dir / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    record = {
        "name": name,
        "command": shlex.join([Path(sys.executable).name, *sys.argv]),
        "revision": revision(),
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": machine_facts(),
        "notes": notes,
        "figures": dict(figures),
    }
    path.write_text(json.dumps(record, indent=2, sort_keys=False) + "\n")
    return path


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"
