"""Remote reward models against a small fake vLLM pooling server on 127.0.0.1: the wire
format (/tokenize, /pooling, /classify), the load_reward_model dispatch, and the faults
(malformed JSON, wrong counts, a server that is down). Real servers: tests/vllm/test_vllm.py.

The fake extends test_openai_backend's FakeVllm (tokens are characters, id = ord) with one
special token, "<extra_0>" = id 0, and a PRM whose P(good) at a step token is
(number of step tokens so far) / 10, and 0.9 at every other token: reading the wrong row
shows up as a wrong reward.
"""

from __future__ import annotations

import json
import math
import sys
from http.server import ThreadingHTTPServer
from typing import Iterator

import pytest

from tests.helpers.fake_http import serving
from tests.unit.test_openai_backend import FakeVllm, free_port, url

from specs_engine.errors import ConfigError, MissingExtraError, ServerResponseError, ServerUnavailableError
from specs_engine.models import RewardModel
from specs_engine.rewards import load_reward_model
from specs_engine.backends.openai.reward import OpenAISequenceClassifierReward, OpenAIStepTokenPRM
from specs_engine.rewards.score_rules import last_step_reward

STEP = "<extra_0>"
QUESTION = "What is 2 + 3?"
SOLUTIONS = [["2 + 3 = 5.", "So \\boxed{5}."], ["2 + 3 = 6."]]


def char_ids(text: str) -> list[int]:
    """The fake tokenizer: one id per character, the step token as id 0."""
    ids: list[int] = []
    for i, part in enumerate(text.split(STEP)):
        ids += ([0] if i else []) + [ord(c) for c in part]
    return ids


class FakeRewardServer(FakeVllm):
    """FakeVllm plus the pooling endpoints; server.mode picks a fault."""

    def do_POST(self) -> None:
        if self.path not in ("/tokenize", "/pooling", "/classify"):
            return super().do_POST()
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.server.requests.append(("POST", self.path, body, dict(self.headers)))
        if self.server.mode == "malformed" and self.path != "/tokenize":
            return self._raw(b'{"data": [', 200)
        handler = {"/tokenize": self._tokenize, "/pooling": self._pool, "/classify": self._classify}
        handler[self.path](body)

    def _tokenize(self, body: dict) -> None:
        if "messages" not in body:
            return self._json({"tokens": char_ids(body["prompt"])})
        if self.server.mode == "no_template":
            return self._json({"error": "default chat template is no longer allowed"}, 400)
        text = "".join(f"{m['role']}:{m['content']}\n" for m in body["messages"])
        self._json({"tokens": char_ids(text)})

    def _pool(self, body: dict) -> None:
        data = []
        for index, ids in enumerate(body["input"]):
            rows, steps = [], 0
            for t in ids:
                steps += t == 0
                good = steps / 10 if t == 0 else 0.9
                rows.append([1 - good, good])
            if self.server.mode == "steps_only":
                rows = [r for r, t in zip(rows, ids) if t == 0]
            if self.server.mode == "short":
                rows = rows[:-1]
            if self.server.mode == "bad_probability":
                rows = [[0.0, 1.5] for _ in rows]
            data.append({"index": index, "object": "pooling", "data": rows})
        if self.server.mode == "missing_item":
            data = data[:-1]
        self._json({"data": data[::-1]})  # out of order: the client must sort by index

    def _classify(self, body: dict) -> None:
        logits = [[len(text) / 10] for text in body["input"]]
        if self.server.mode == "two_labels":
            logits = [[0.0, row[0]] for row in logits]
        if self.server.mode == "nan":
            logits = [[float("nan")] for _ in logits]
        data = [{"index": i, "probs": row, "num_classes": len(row)} for i, row in enumerate(logits)]
        self._raw(json.dumps({"data": data}).encode(), 200)


@pytest.fixture
def server() -> Iterator[ThreadingHTTPServer]:
    with serving(FakeRewardServer) as httpd:
        yield httpd


def posts(httpd: ThreadingHTTPServer, path: str) -> list[dict]:
    return [body for _, p, body, _ in httpd.requests if p == path]


def test_prm_reads_the_last_step_token_of_each_solution(server):
    prm = OpenAIStepTokenPRM(url(server))
    assert isinstance(prm, RewardModel) and prm.name == "tiny" and prm.step_token_id == 0
    assert prm.score(QUESTION, SOLUTIONS) == pytest.approx([0.2, 0.1])
    [pooled] = posts(server, "/pooling")
    assert pooled["task"] == "token_classify" and pooled["model"] == "tiny"
    assert len(pooled["input"]) == 2, "all solutions go in one pooling request"


def test_prm_layout_is_step_token_prms_chat_layout(server):
    prm = OpenAIStepTokenPRM(url(server))
    prm.score(QUESTION, [["  2 + 3 = 5. ", "So 5."]])
    messages = posts(server, "/tokenize")[-1]["messages"]
    assert [m["role"] for m in messages] == ["system", "user", "assistant"]
    assert messages[1]["content"] == QUESTION
    assert messages[2]["content"] == f"2 + 3 = 5.{STEP}So 5.{STEP}"


def test_prm_without_chat_template_sends_plain_text(server):
    server.mode = "no_template"
    prm = OpenAIStepTokenPRM(url(server))
    assert prm.score(QUESTION, [["a", "b"]]) == pytest.approx([0.2])
    assert posts(server, "/tokenize")[-1]["prompt"] == f"{QUESTION}\n\na{STEP}b{STEP}"


def test_prm_accepts_servers_that_return_only_step_rows(server):
    prm = OpenAIStepTokenPRM(url(server))
    server.mode = "steps_only"
    assert prm.score(QUESTION, SOLUTIONS) == pytest.approx([0.2, 0.1])


@pytest.mark.parametrize("mode, message", [
    ("short", r"returned \d+ rows for \d+ tokens \(2 step tokens\)"),
    ("missing_item", r"answered 1 items for 2 inputs"),
    ("bad_probability", r"probability 1.5, outside \[0, 1\]"),
    ("malformed", r"returned malformed JSON"),
])
def test_prm_bad_answers_raise_naming_the_endpoint(server, mode, message):
    prm = OpenAIStepTokenPRM(url(server))
    server.mode = mode
    with pytest.raises(ServerResponseError, match=rf"reward server http://127.0.0.1:\d+/pooling.*{message}"):
        prm.score(QUESTION, SOLUTIONS)


def test_unknown_step_token_is_refused_at_construction(server):
    with pytest.raises(ConfigError, match=r"step_token='<sep>' is not a token"):
        OpenAIStepTokenPRM(url(server), step_token="<sep>")


def test_classifier_scores_like_the_in_process_adapter(server):
    texts = [f"{QUESTION}\n\n2 + 3 = 5.\n\nSo \\boxed{{5}}.", f"{QUESTION}\n\n2 + 3 = 6."]
    raw = [len(t) / 10 for t in texts]
    assert OpenAISequenceClassifierReward(url(server)).score(QUESTION, SOLUTIONS) == pytest.approx(raw)
    assert posts(server, "/classify")[-1] == {"model": "tiny", "input": texts, "use_activation": False}
    squashed = [1 / (1 + math.exp(-x)) for x in raw]
    reward = OpenAISequenceClassifierReward(url(server), sigmoid=True)
    assert reward.score(QUESTION, SOLUTIONS) == pytest.approx(squashed)
    server.mode = "two_labels"  # softmax([0, x])[1] == sigmoid(x)
    assert OpenAISequenceClassifierReward(url(server)).score(QUESTION, SOLUTIONS) == pytest.approx(squashed)


def test_classifier_refuses_non_finite_logits(server):
    reward = OpenAISequenceClassifierReward(url(server))
    server.mode = "nan"
    with pytest.raises(ServerResponseError, match=r"/classify returned nan, not a finite number"):
        reward.score(QUESTION, SOLUTIONS)


def test_server_down_names_url_and_reward_role():
    port = free_port()
    with pytest.raises(ServerUnavailableError, match=rf"reward server http://127.0.0.1:{port}/v1/models"):
        OpenAIStepTokenPRM(f"http://127.0.0.1:{port}", retries=0)


def test_server_stopped_after_start_fails_the_call_by_name(server):
    prm = OpenAIStepTokenPRM(url(server), retries=0)
    server.shutdown()
    server.server_close()
    with pytest.raises(ServerUnavailableError, match=r"reward server http://127.0.0.1:\d+/tokenize"):
        prm.score(QUESTION, SOLUTIONS)


def test_api_key_is_sent_but_never_shown(server):
    prm = OpenAIStepTokenPRM(url(server), api_key="sk-reward-9")
    assert server.requests[-1][3]["Authorization"] == "Bearer sk-reward-9"
    assert "sk-reward" not in repr(prm)


def test_load_reward_model_dispatches_on_backend_and_caches(server):
    prm = load_reward_model(url(server), backend="openai")
    assert isinstance(prm, OpenAIStepTokenPRM)
    assert load_reward_model(url(server), backend="openai") is prm
    classifier = load_reward_model(url(server), backend="openai", kind="classifier")
    assert isinstance(classifier, OpenAISequenceClassifierReward)
    with pytest.raises(ConfigError, match=r"kind='value' is not allowed: kind must be one of step_token, classifier"):
        load_reward_model(url(server), backend="openai", kind="value")
    with pytest.raises(ConfigError, match=r"backend='tgi' is not allowed for the reward"):
        load_reward_model(url(server), backend="tgi")


def test_from_pretrained_puts_the_reward_on_the_same_backend(server):
    from specs_engine.engine import SpecsEngine

    engine = SpecsEngine.from_pretrained(draft=url(server), target=url(server), reward=url(server),
                                         backend="openai")
    assert isinstance(engine.reward, OpenAIStepTokenPRM)
    assert engine.reward.server.base_url == engine.draft.server.base_url


def test_from_pretrained_names_each_server_role_and_passes_the_key_to_the_reward(server):
    from specs_engine.engine import SpecsEngine

    port = free_port()
    with pytest.raises(ServerUnavailableError, match=rf"draft server http://127.0.0.1:{port}"):
        SpecsEngine.from_pretrained(draft=f"http://127.0.0.1:{port}", target=url(server),
                                    backend="openai", retries=0)
    with pytest.raises(ServerUnavailableError, match=rf"target server http://127.0.0.1:{port}"):
        SpecsEngine.from_pretrained(draft=url(server), target=f"http://127.0.0.1:{port}",
                                    backend="openai", retries=0)
    engine = SpecsEngine.from_pretrained(draft=url(server), reward=url(server), backend="openai",
                                         api_key="sk-both-7", timeout_s=9.0)
    reward_calls = [r for r in server.requests if r[3].get("Authorization") == "Bearer sk-both-7"]
    assert engine.reward.server.timeout_s == 9.0 and len(reward_calls) >= 2  # draft's and reward's


def test_value_head_reward_stays_in_process_whatever_the_backend(tiny_reward_dir):
    from specs_engine.backends.hf.value_head import ValueHeadPRM

    assert isinstance(load_reward_model(tiny_reward_dir, backend="openai", dtype="float32"), ValueHeadPRM)
    with pytest.raises(ConfigError, match=r"\['kind'\] are not allowed for the in-process"):
        load_reward_model(tiny_reward_dir, backend="vllm", kind="step_token")
    # the backend's serving options (passed on by from_pretrained) do not concern it
    assert isinstance(load_reward_model(tiny_reward_dir, backend="vllm", dtype="float32",
                                        gpu_memory_utilization=0.3), ValueHeadPRM)


def test_vllm_backend_without_vllm_names_the_extra(tiny_step_prm_dir, monkeypatch):
    monkeypatch.setitem(sys.modules, "vllm", None)  # `import vllm` now fails, installed or not
    with pytest.raises(MissingExtraError, match=r"pip install 'specs-tts\[vllm\]'"):
        load_reward_model(tiny_step_prm_dir, backend="vllm")


def test_last_step_reward_refuses_inputs_without_a_step_token():
    with pytest.raises(ServerResponseError, match=r"holds no step token \(id 7\)"):
        last_step_reward([[0.5, 0.5]], [1], 7, "reward server X/pooling")
