"""The `specs` command on tiny real models: streaming run, bench rows, resume, summary."""

from __future__ import annotations

import json

import pytest

from specs_engine.app import bench, cli
from specs_engine import SpecsConfig
from specs_engine.errors import ConfigError

QUESTION = "Ann has 3 apples and buys 4 more. How many apples does Ann have?"


@pytest.fixture
def model_args(tiny_draft_dir, tiny_target_dir, tiny_reward_dir):
    return ["--draft", str(tiny_draft_dir), "--target", str(tiny_target_dir),
            "--reward", str(tiny_reward_dir), "--dtype", "float32", "--max-steps", "3"]


def test_run_streams_steps_then_answer_and_time_split(model_args, capsys):
    assert cli.main(["run", QUESTION, *model_args]) == 0
    out = capsys.readouterr().out
    assert "--- step 1 [target, reward " in out
    assert "answer:" in out and "time:" in out and "from the draft" in out


@pytest.mark.parametrize(
    "argv, message",
    [
        (["run", "  "], "the question is empty"),
        (["run", QUESTION, "--n", "0"], "n=0 is not allowed"),
        (["run", QUESTION, "--n", "4", "--beam-width", "3"], "beam_width=3"),
        (["run", QUESTION, "--preset", "gpt-17"], "qwen2.5-coder"),
        (["bench", "--methods", "specs,mcts"], "--methods entry 'mcts'"),
    ],
)
def test_bad_input_is_refused_with_a_named_error(argv, message, capsys):
    assert cli.main(argv) == 2
    assert message in capsys.readouterr().err


def test_bench_writes_rows_summary_and_plot_and_resumes(model_args, tmp_path, monkeypatch):
    out = tmp_path / "bench"
    argv = ["bench", "--split", "test", "--limit", "2", "--methods", "specs,greedy:draft",
            "--out", str(out), *model_args]
    real_run_one, calls = bench.run_one, []

    def interrupted_on_third(*args, **kwargs):
        calls.append(args[2])
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real_run_one(*args, **kwargs)

    monkeypatch.setattr(bench, "run_one", interrupted_on_third)
    assert cli.main(argv) == 130  # Ctrl-C: the two finished rows stay on disk
    assert len((out / bench.ROWS).read_text().splitlines()) == 2
    monkeypatch.setattr(bench, "run_one", real_run_one)
    assert cli.main(argv) == 0  # the rerun only does what is missing
    rows = [json.loads(line) for line in (out / bench.ROWS).read_text().splitlines()]
    assert sorted((r["arm"], r["problem"]) for r in rows) == sorted(
        {(r["arm"], r["problem"]) for r in rows}
    ) and len(rows) == 4
    assert {r["arm"] for r in rows} == {"specs", "greedy:draft"}
    summary = json.loads((out / bench.SUMMARY).read_text())
    assert {s["arm"] for s in summary} == {"specs", "greedy:draft"}
    assert (out / bench.TABLE).read_text().startswith("Budget per problem: ")
    assert (out / bench.PLOT).read_bytes()[:4] == b"\x89PNG"


def test_bench_refuses_to_resume_a_folder_run_with_other_settings(tmp_path, monkeypatch, capsys):
    out = tmp_path / "bench"
    argv = ["bench", "--split", "test", "--n", "4", "--beam-width", "2", "--preset", "p", "--out", str(out)]
    args = cli.parser().parse_args(argv)
    first = bench.settings(args.split, *cli.config_and_budget(args), cli.models(args))
    bench.check_settings(out, first)
    bench.check_settings(out, first)  # the same settings resume
    loads = []
    monkeypatch.setattr(cli.SpecsEngine, "from_pretrained", staticmethod(lambda **kw: loads.append(kw)))
    assert cli.main([*argv, "--accept-threshold", "-3"]) == 2
    error = capsys.readouterr().err
    assert f"config.accept_threshold: {SpecsConfig.accept_threshold} -> -3.0" in error and "--out" in error
    assert "models.dtype" not in error and loads == []  # refused before any model loads


def test_bench_refuses_a_folder_whose_preset_stood_for_another_reward(tmp_path, monkeypatch):
    """The same flags, but the preset's reward changed between versions: the old rows
    were scored by another reward, so resuming would mix two products in one table."""
    from specs_engine import sources

    out = tmp_path / "bench"
    args = cli.parser().parse_args(["bench", "--split", "tune", "--backend", "llama.cpp", "--out", str(out)])
    recorded = cli.recorded_models(args)
    assert recorded["preset_roles"] == sources.resolve_preset(cli.DEFAULT_PRESET, "llama.cpp")
    bench.check_settings(out, bench.settings(args.split, *cli.config_and_budget(args), recorded))
    changed = {**sources.PRESETS[cli.DEFAULT_PRESET], "reward": "another-reward"}
    monkeypatch.setitem(sources.PRESETS, cli.DEFAULT_PRESET, changed)
    with pytest.raises(ConfigError, match="models.preset_roles.*another-reward"):
        bench.check_settings(out, bench.settings(args.split, *cli.config_and_budget(args),
                                                 cli.recorded_models(args)))


@pytest.mark.parametrize("llama_cpp, runtime", [(True, "llama.cpp"), (False, "transformers")])
def test_bench_settings_record_the_backend_the_rows_run_on(monkeypatch, llama_cpp, runtime):
    """Without --backend the preset runs on llama.cpp when it loads: the folder records
    that runtime, so installing llama-cpp-python later cannot mix runtimes in one table."""
    from specs_engine import backends

    monkeypatch.setattr(backends, "_llama_cpp_loads", lambda: llama_cpp)
    args = cli.parser().parse_args(["bench", "--split", "test"])
    assert cli.models(args)["backend"] == runtime
    explicit = cli.parser().parse_args(["bench", "--split", "test", "--backend", "transformers"])
    assert cli.models(explicit)["backend"] == "transformers"


def test_torn_last_row_is_ignored_on_resume(tmp_path):
    path = tmp_path / bench.ROWS
    path.write_text(json.dumps({"arm": "specs", "problem": "p1"}) + "\n" + '{"arm": "sp')
    assert bench.done_keys(path) == {("specs", "p1")}


def test_summary_statistics():
    low, high = bench.wilson(5, 10)
    assert low == pytest.approx(0.2366, abs=1e-3) and high == pytest.approx(0.7634, abs=1e-3)
    rows = [
        {"arm": "beam_search:target", "problem": "p1", "wall_s": 10.0, "correct": True, "draft_share": 0.0},
        {"arm": "beam_search:target", "problem": "p2", "wall_s": 20.0, "correct": False, "draft_share": 0.0},
        {"arm": "specs", "problem": "p1", "wall_s": 9.0, "correct": True, "draft_share": 0.5, "draft_s": 4.0,
         "draft_rounds": 3, "draft_rounds_rejected": 1, "steps": [["target"], ["draft"]]},
        {"arm": "specs", "problem": "p2", "wall_s": 6.0, "correct": True, "draft_share": 1.0, "draft_s": 2.0,
         "draft_rounds": 2, "draft_rounds_rejected": 0, "steps": [["draft"]] * 4},
    ]
    table = {r["arm"]: r for r in bench.summarise(rows)}
    assert table["specs"]["latency_vs_ref"] == pytest.approx(0.5)
    assert table["specs"]["accuracy"] == 1.0 and table["specs"]["draft_share"] == 0.75
    assert table["beam_search:target"]["p90_s"] == 20.0
    assert (table["specs"]["draft_s"], table["specs"]["steps"]) == (3.0, 3.0)
    assert "| specs | 3.0 | 0.0 | 0.0 | 3.0 | 1/5 |" in bench.markdown(list(table.values()))
