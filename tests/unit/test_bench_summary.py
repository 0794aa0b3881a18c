"""The bench summary: paired latency against target beam search, and the budget it ran under."""

from __future__ import annotations

import json

import pytest

from specs_engine.app import bench


def row(arm: str, problem: str, wall: float, correct: bool = True) -> dict:
    return {"arm": arm, "problem": problem, "wall_s": wall, "correct": correct,
            "draft_share": 0.5, "steps": [], "draft_s": 0, "target_s": wall, "reward_s": 0}


ROWS = [row("beam_search:target", "p1", 20.0), row("beam_search:target", "p2", 10.0),
        row("specs", "p1", 10.0), row("specs", "p2", 20.0, correct=False),
        row("specs", "p3", 400.0)]  # p3: no reference row, so not in the paired ratio


def test_paired_ratio_uses_only_problems_both_ran():
    table = {r["arm"]: r for r in bench.summarise(ROWS)}
    specs = table["specs"]
    assert specs["paired_ratio"] == pytest.approx(30 / 30)
    assert specs["paired_median"] == pytest.approx((0.5 + 2.0) / 2)
    assert specs["paired_faster_on"] == 1
    assert specs["paired_ci_low"] <= specs["paired_ratio"] <= specs["paired_ci_high"]
    # the unpaired ratio of means mixes in p3 and says something else entirely
    assert specs["latency_vs_ref"] == pytest.approx((430 / 3) / 15)
    assert table["beam_search:target"]["paired_ratio"] is None


def test_markdown_heads_the_table_with_the_budget_and_shows_the_paired_ratio():
    table = bench.summarise(ROWS)
    text = bench.markdown(table, {"latency_s": 30.0, "max_steps": 12, "max_new_tokens": 512})
    assert text.startswith("Budget per problem: 30 s, at most 12 steps and 512 new tokens\n")
    specs_line = next(line for line in text.splitlines() if line.startswith("| specs |"))
    assert "| 1.00x (" in specs_line
    assert "no deadline" in bench.markdown(table, {"latency_s": None, "max_steps": 4,
                                                   "max_new_tokens": 64})


def test_write_summary_reads_the_folders_budget(tmp_path):
    (tmp_path / bench.ROWS).write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    (tmp_path / bench.SETTINGS).write_text(json.dumps(
        {"split": "tune", "budget": {"latency_s": 60.0, "max_steps": 8, "max_new_tokens": 256}}))
    bench.write_summary(tmp_path)
    assert (tmp_path / bench.TABLE).read_text().startswith("Budget per problem: 60 s,")
