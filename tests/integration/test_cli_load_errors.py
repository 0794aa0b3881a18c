"""The CLI names what it cannot load: a model folder that is empty or holds a broken
config.json, a hub id while offline, a broken specs_reward.json, an unwritable cache;
`specs: error:` and exit code 2, never a traceback."""

from __future__ import annotations

import pytest

from specs_engine.app import cli

QUESTION = "What is 2 + 3?"


def _model_folder(tmp_path, kind):
    folder = tmp_path / kind
    folder.mkdir()
    if kind == "broken_config":
        (folder / "config.json").write_text("{not json")
    return str(folder)


@pytest.mark.parametrize("case", ["empty_folder", "broken_config", "hub_id_offline"])
def test_cli_names_a_model_that_cannot_load(case, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    location = "nobody/no-such-model" if case == "hub_id_offline" else _model_folder(tmp_path, case)
    assert cli.main(["run", QUESTION, "--target", location, "--method", "greedy"]) == 2
    err = capsys.readouterr().err
    assert "\nspecs: error: " in err and location in err and "Traceback" not in err


def test_cli_names_a_broken_reward_config_file(tmp_path, tiny_draft_dir, capsys):
    head = tmp_path / "head"
    head.mkdir()
    (head / "specs_reward.json").write_text('{"type": "value_head", ')
    argv = ["run", QUESTION, "--draft", str(tiny_draft_dir), "--target", str(tiny_draft_dir),
            "--reward", str(head), "--dtype", "float32"]
    assert cli.main(argv) == 2
    assert str(head / "specs_reward.json") in capsys.readouterr().err


def test_cli_names_specs_cache_when_the_cache_cannot_be_written(tmp_path, capsys, monkeypatch):
    not_a_folder = tmp_path / "file"
    not_a_folder.write_text("")
    monkeypatch.setenv("SPECS_CACHE", str(not_a_folder))
    assert cli.main(["run", QUESTION, "--target", "qwen2.5-coder-0.5b", "--method", "greedy"]) == 2
    err = capsys.readouterr().err
    assert "\nspecs: error: " in err and "$SPECS_CACHE" in err
