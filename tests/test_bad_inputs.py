"""Bad input named above any model work: knobs, server answers, chat messages, call
kwargs, and (from the CLI, as `specs: error:` and exit 2) model folders and the cache."""

from __future__ import annotations

import json
import math

import pytest

from fake_http import serving
from fakes import fake_engine
from test_openai_compat import FakeVllm

from specs_engine import cli
from specs_engine.backends.openai_compat import OpenAICompatLM, ServerResponseError
from specs_engine.config import SpecsConfig
from specs_engine.errors import ConfigError

QUESTION = "What is 2 + 3?"


@pytest.mark.parametrize("knob", ["beta", "tau", "temperature", "rsd_threshold"])
def test_an_infinite_knob_is_refused_by_name(knob):
    with pytest.raises(ConfigError, match=f"{knob}=inf is not allowed.*finite"):
        SpecsConfig(**{knob: math.inf})


class InfiniteLogprobs(FakeVllm):
    def _score(self, body):
        choices = [{"index": i, "prompt_logprobs": [None] + [{str(t): {"logprob": math.inf}} for t in ids[1:]]}
                   for i, ids in enumerate(body["prompt"])]
        self._json({"choices": choices})


def test_a_positive_infinite_log_prob_from_a_server_is_refused():
    with serving(InfiniteLogprobs) as httpd:
        lm = OpenAICompatLM(f"http://127.0.0.1:{httpd.server_address[1]}", role="target",
                            tokenizer_fingerprint="x")
        with pytest.raises(ServerResponseError, match="log-prob inf"):
            lm.score([[1, 2]], [[3, 4]])


@pytest.mark.parametrize("messages, message", [
    ([{"role": "user", "content": "  "}], r"prompt\[0\]\['content'\] is blank"),
    ([{"role": "system", "content": "x"}, {"role": "robot", "content": "hi"}],
     r"prompt\[1\]\['role'\]='robot' is not allowed"),
])
def test_blank_chat_content_and_unknown_roles_are_refused(messages, message):
    engine = fake_engine()
    with pytest.raises(ConfigError, match=message):
        engine.generate(messages)
    assert engine.calls and engine.draft.propose_calls == 0  # refused before any model ran


def test_max_tokens_and_max_new_tokens_together_as_call_kwargs_are_refused():
    from specs_integrations.langchain import ChatSpecs

    chat = ChatSpecs(engine=fake_engine())
    with pytest.raises(ConfigError, match="max_tokens=5 and max_new_tokens=6 both given"):
        chat.invoke(QUESTION, max_tokens=5, max_new_tokens=6)


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
