"""`.ci/run` fails when any stage fails, names that stage, and runs the README's test command.

The script is run for real with bash, in a copy of the repository layout whose stage
commands (install script, `.venv/bin/python`, vLLM tier script) are stubs with chosen exit
codes: the CI logic is what is under test, not the stages themselves.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _stub(path: Path, rc: int, log: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f'#!/usr/bin/env bash\necho "{path.name} $* HF=$HF_HUB_OFFLINE" >> {log}\nexit {rc}\n')
    path.chmod(0o755)


def _run_ci(tmp_path: Path, install: int = 0, pytest_rc: int = 0, vllm: int = 0):
    shutil.copytree(ROOT / ".ci", tmp_path / ".ci")
    log = tmp_path / "calls.log"
    _stub(tmp_path / "scripts" / "install.sh", install, log)
    _stub(tmp_path / ".venv" / "bin" / "python", pytest_rc, log)
    _stub(tmp_path / "scripts" / "vllm_tier.sh", vllm, log)
    done = subprocess.run(["bash", str(tmp_path / ".ci" / "run")], capture_output=True,
                          text=True, timeout=60, env={"PATH": "/usr/bin:/bin"})
    calls = log.read_text().splitlines() if log.exists() else []
    return done, calls


def test_all_stages_pass_in_order(tmp_path):
    done, calls = _run_ci(tmp_path)
    assert done.returncode == 0, done.stderr
    assert calls == ["install.sh llama-cpp HF=1", "python -m pytest HF=1", "vllm_tier.sh  HF=1"]
    assert "all stages passed" in done.stdout


@pytest.mark.parametrize("failing, rc, ran", [
    ("install", 7, 1),        # a failed install must not fall through to the tests
    ("default-tier", 1, 2),   # test failures
    ("default-tier", 5, 2),   # pytest collected no tests: not green
    ("vllm-tier", 3, 3),
])
def test_a_failing_stage_fails_ci_and_is_named(tmp_path, failing, rc, ran):
    codes = {"install": 0, "pytest_rc": 0, "vllm": 0}
    codes[{"install": "install", "default-tier": "pytest_rc", "vllm-tier": "vllm"}[failing]] = rc
    done, calls = _run_ci(tmp_path, **codes)
    assert done.returncode == rc
    assert f"FAILED at stage '{failing}' (exit {rc})" in done.stderr
    assert len(calls) == ran  # nothing after the failing stage ran


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    command = re.search(r"# 2\. the tests.*\n(.+)\n", readme).group(1).strip()
    install, tests = (part.strip() for part in command.split("&&"))
    ci = (ROOT / ".ci" / "run").read_text()
    assert f"stage install {install}\n" in ci
    assert f"\n    {tests}\n" in ci


def test_constraints_pin_versions_the_declared_bounds_allow():
    """constraints.txt (applied by install.sh) pins each fast mover inside pyproject's bounds."""
    import tomllib

    from packaging.requirements import Requirement
    from packaging.version import Version

    pins = dict(line.split("==") for line in (ROOT / "constraints.txt").read_text().splitlines()
                if line.strip() and not line.startswith("#"))
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    bounded = {}
    for requirement in (Requirement(r) for reqs in extras.values() for r in reqs):
        bounded.setdefault(requirement.name, requirement.specifier)
    for name in ("langchain-core", "llama-index-core", "transformers", "vllm"):
        assert any(s.operator in ("<", "<=", "==") for s in bounded[name]), f"{name} has no upper bound"
    for name, version in pins.items():
        if name in bounded:
            assert Version(version) in bounded[name], (name, version, str(bounded[name]))
    assert "-c constraints.txt" in (ROOT / "scripts" / "install.sh").read_text()
