"""scripts/check_readme_figures.py: the README's figures match their committed artefacts,
and the checker catches a figure that does not (wrong digit, wrong rounding, an artefact
that is not committed, a summary that no longer follows from its rows)."""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
spec = importlib.util.spec_from_file_location("check_readme_figures", ROOT / "scripts" / "check_readme_figures.py")
checker = importlib.util.module_from_spec(spec)
sys.modules["check_readme_figures"] = checker
spec.loader.exec_module(checker)
sys.path.insert(0, str(ROOT / "benchmarks"))
from artefact import write_artefact  # noqa: E402


def test_readme_figures_match_their_artefacts():
    report = checker.check(ROOT / "README.md")
    assert report.errors == []
    assert report.unbacked == []  # strict: every measured figure names its artefact
    assert report.checked >= 200  # GSM8K, tuning, llama.cpp, engine, load, vLLM, reward heads


def _git_repo(path: Path) -> Path:
    subprocess.run(["git", "init", "-q", str(path)], check=True)
    return path


def _readme(root: Path, body: str, spec: str = "results/bench.json") -> Path:
    readme = root / "README.md"
    readme.write_text(f"Intro 3 cores.\n<!-- figures: {spec} -->\n{body}\n<!-- /figures -->\n")
    return readme


@pytest.fixture
def repo(tmp_path) -> Path:
    root = _git_repo(tmp_path / "repo")
    write_artefact("bench", {"ratio": 0.8686, "share": 0.375, "ms": [9.1, 17.33], "runs": 20,
                             "ok": True}, out_dir=root / "results")
    subprocess.run(["git", "add", "results/bench.json"], cwd=root, check=True)
    return root


def test_figures_at_their_rounding_pass(repo):
    body = ("| what | n (95% CI) |\n|---|---|\n| x | 0.87x, 37.5% and 38%, 9.1 vs 17.3 ms over 20 runs |\n"
            "`--runs 99` gsm8k-107 Qwen2.5 v0.32.0 rev 6f14b76")
    report = checker.check(_readme(repo, body), repo)
    assert report.errors == [] and report.checked == 6  # the header's 95 and code are not figures


@pytest.mark.parametrize("wrong", ["0.86x", "0.8687x", "37%", "9.2 ms", "21 runs", "2"])
def test_a_figure_not_in_the_artefact_is_caught(repo, wrong):
    report = checker.check(_readme(repo, f"ratio {wrong}"), repo)
    assert len(report.errors) == 1 and wrong.split()[0].rstrip("x%") in report.errors[0]


def test_an_uncommitted_or_missing_artefact_is_caught(repo):
    write_artefact("loose", {"ratio": 0.5}, out_dir=repo / "results")
    report = checker.check(_readme(repo, "0.5", "results/loose.json results/gone.json"), repo)
    assert any("results/loose.json: not committed" in e for e in report.errors)
    assert any("results/gone.json: no such artefact" in e for e in report.errors)


def test_a_summary_that_does_not_follow_from_its_rows_is_caught(tmp_path):
    folder = tmp_path / "benchmarks" / "results" / "gsm8k"
    shutil.copytree(ROOT / "benchmarks" / "results" / "gsm8k", folder)
    summary = json.loads((folder / "summary.json").read_text())
    summary[0]["mean_s"] += 1.0
    (folder / "summary.json").write_text(json.dumps(summary))
    readme = _readme(tmp_path, "16", "benchmarks/results/gsm8k/summary.json benchmarks/results/gsm8k/figures.json")
    report = checker.check(readme, tmp_path)  # not a git repository: tracking is not checked
    assert [e for e in report.errors if "does not follow" in e] == [
        "benchmarks/results/gsm8k/summary.json: does not follow from results.jsonl "
        "(rerun: python benchmarks/gsm8k_figures.py benchmarks/results/gsm8k)"]


def test_figures_without_an_artefact_are_listed_and_fail_when_strict(repo, monkeypatch):
    readme = _readme(repo, "0.87")
    readme.write_text(readme.read_text() + "65 ms <!-- no-artefact: the 65 ms forward -->\n")
    assert checker.check(readme, repo).unbacked == ["README line 5: the 65 ms forward"]
    monkeypatch.setattr(checker, "ROOT", repo)
    assert checker.main(["--readme", str(readme)]) == 0
    assert checker.main(["--readme", str(readme), "--strict"]) == 1
