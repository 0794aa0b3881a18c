"""OpenAILM against a small fake vLLM server on 127.0.0.1: the wire format and the
faults (server down, hung, malformed JSON, mismatched token counts, leaked key).

The fake speaks just enough of vLLM's API (/v1/models, /tokenize, streamed and plain
/v1/completions) for the client's real HTTP path to run; real vLLM servers are exercised
in tests/vllm/test_vllm.py (the vllm tier).
"""

from __future__ import annotations

import json
import socket
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Iterator

import pytest

from tests.helpers.fake_http import serving

from specs_engine.backends.openai.client import API_KEY_ENV
from specs_engine.backends.openai.lm import OpenAILM, load
from specs_engine.errors import (
    ConfigError,
    DeadlineExceededError,
    ServerResponseError,
    ServerUnavailableError,
)
from specs_engine.models import LanguageModel, ProposalParams

MODEL = "tiny"
PARAMS = ProposalParams(delimiter="\n\n", max_new_tokens=8, seed=3)


class FakeVllm(BaseHTTPRequestHandler):
    """Tokens are characters (id = ord); each candidate streams 'ab\\n\\n' or hangs,
    depending on server.mode."""

    protocol_version = "HTTP/1.1"

    def log_message(self, *args: Any) -> None:  # keep test output quiet
        pass

    def do_GET(self) -> None:
        self.server.requests.append(("GET", self.path, None, dict(self.headers)))
        if self.path == "/v1/models":
            self._json({"data": [{"id": MODEL, "max_model_len": 64}]})
        else:
            self._json({"error": "not found"}, 404)

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.server.requests.append(("POST", self.path, body, dict(self.headers)))
        mode = self.server.mode
        if mode == "unauthorized":
            return self._json({"error": f"bad key {self.headers.get('Authorization')}"}, 401)
        if mode == "echo_key":  # a server whose error body repeats the request's headers
            return self._json({"error": f"failed; headers: {dict(self.headers)}"}, 500)
        if mode == "malformed":
            return self._raw(b'{"choices": [', 200)
        if self.path == "/tokenize":
            text = body.get("prompt") or "".join(m["content"] for m in body["messages"])
            return self._json({"tokens": [ord(c) for c in text]})
        if body.get("stream"):
            return self._stream(body)
        return self._score(body)

    def _score(self, body: dict) -> None:
        if self.server.mode == "hang":
            self.server.release.wait(30)
            return
        choices = []
        for i, ids in enumerate(body["prompt"]):
            entries: list[Any] = [None] + [{str(t): {"logprob": -0.5}} for t in ids[1:]]
            if self.server.mode == "short":
                entries = entries[:-1]
            if self.server.mode == "wrong_token":
                entries[-1] = {"999999": {"logprob": -0.5}}
            choices.append({"index": i, "prompt_logprobs": entries})
        self._json({"choices": choices})

    def _stream(self, body: dict) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for index in range(body["n"]):
            for j, ch in enumerate("ab\n\n"):
                if self.server.mode == "hang" and j == 1:
                    self.server.release.wait(30)
                    return
                lp = {"tokens": [f"token_id:{ord(ch)}"], "token_logprobs": [-1.0],
                      "text_offset": [j]}
                if self.server.mode == "mismatch":
                    lp["token_logprobs"] = []
                stop = "b" if self.server.mode == "user_stop" else "\n\n"
                last = j == 3 or (j == 1 and stop == "b")
                choice = {"index": index, "text": ch, "logprobs": lp,
                          "finish_reason": "stop" if last else None,
                          "stop_reason": stop if last else None}
                self._chunk(b"data: " + json.dumps({"choices": [choice]}).encode() + b"\n\n")
                if last:
                    break
        self._chunk(b"data: [DONE]\n\n")
        self._chunk(b"")

    def _chunk(self, data: bytes) -> None:
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()

    def _json(self, obj: Any, status: int = 200) -> None:
        self._raw(json.dumps(obj).encode(), status)

    def _raw(self, data: bytes, status: int) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture
def server() -> Iterator[ThreadingHTTPServer]:
    with serving(FakeVllm) as httpd:
        yield httpd


def url(httpd: ThreadingHTTPServer) -> str:
    return f"http://127.0.0.1:{httpd.server_address[1]}/v1"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_health_check_reads_model_and_context_window(server):
    lm = load(url(server), role="target")
    assert isinstance(lm, LanguageModel)
    assert (lm.name, lm.context_window) == (MODEL, 64)
    assert lm.tokenizer_fingerprint.startswith("probe-sha256:")


def test_encode_uses_server_tokenizer_and_chat_messages(server):
    lm = OpenAILM(url(server))
    assert lm.encode("hi") == [104, 105]
    assert lm.encode_prompt([{"role": "user", "content": "ok"}]) == [111, 107]
    body = server.requests[-1][2]
    assert body["add_generation_prompt"] is True and body["messages"][0]["content"] == "ok"


def test_propose_streams_candidates_with_ids_logprobs_and_delimiter(server):
    lm = OpenAILM(url(server))
    rounds = lm.propose([[1, 2], [3]], 2, PARAMS)
    assert [len(r) for r in rounds] == [2, 2]
    cand = rounds[1][0]
    assert cand.token_ids == (97, 98, 10, 10) and cand.text == "ab\n\n"
    assert cand.token_logprobs == (-1.0,) * 4 and cand.finish_reason == "delimiter"
    sent = [r[2] for r in server.requests if r[1] == "/v1/completions"]
    assert sorted(s["prompt"] for s in sent) == [[1, 2], [3]]  # one request per beam, sent concurrently
    assert sent[0]["seed"] != sent[1]["seed"], "beams must not share sampling noise"
    assert sent[0]["stop"] == ["\n\n"] and sent[0]["include_stop_str_in_output"] is True


def test_caller_stop_string_is_cut_from_tokens_and_text(server):
    lm = OpenAILM(url(server))
    server.mode = "user_stop"
    params = ProposalParams(delimiter="\n\n", max_new_tokens=8, stop=("b",))
    [[cand]] = lm.propose([[1]], 1, params)
    assert (cand.token_ids, cand.text, cand.finish_reason) == ((97,), "a", "stop")
    assert server.requests[-1][2]["stop"] == ["\n\n", "b"]


def test_score_keeps_continuation_logprobs_in_one_request(server):
    lm = OpenAILM(url(server))
    before = len(server.requests)
    assert lm.score([[1, 2], [5]], [[3, 4], []]) == [[-0.5, -0.5], []]
    assert len(server.requests) == before + 1
    assert server.requests[-1][2]["prompt"] == [[1, 2, 3, 4]]


def test_server_down_names_url_and_role_at_construction():
    port = free_port()
    with pytest.raises(ServerUnavailableError, match=rf"target server http://127.0.0.1:{port}"):
        OpenAILM(f"http://127.0.0.1:{port}", role="target", retries=1)


def test_a_stream_retries_a_lost_connection_then_names_the_server(server):
    lm = OpenAILM(url(server), role="draft", retries=1)
    lm.server.base_url = f"http://127.0.0.1:{free_port()}"  # the server went away
    sent = lm.server.traffic.requests
    with pytest.raises(ServerUnavailableError, match=r"draft server .*/v1/completions is unreachable"):
        lm.propose([[1]], 1, PARAMS)
    assert lm.server.traffic.requests == sent + 2  # one try and one retry, as for a plain POST


def test_a_stream_refused_with_an_http_status_names_it(server):
    lm = OpenAILM(url(server), role="draft")
    server.mode = "unauthorized"
    with pytest.raises(ServerUnavailableError, match=r"draft server .*/v1/completions rejected the API key"):
        lm.propose([[1]], 1, PARAMS)


def test_unknown_model_lists_served_ones(server):
    with pytest.raises(ConfigError, match=r"model='big' .*\['tiny'\]"):
        OpenAILM(url(server), "big")


@pytest.mark.parametrize("mode", ["short", "wrong_token"])
def test_mismatched_prompt_logprobs_raise_naming_endpoint(server, mode):
    lm = OpenAILM(url(server), role="target")
    server.mode = mode
    with pytest.raises(ServerResponseError, match=r"target server .*/v1/completions"):
        lm.score([[1, 2]], [[3, 4]])


def test_mismatched_streamed_token_counts_raise(server):
    lm = OpenAILM(url(server), role="draft")
    server.mode = "mismatch"
    with pytest.raises(ServerResponseError, match=r"1 tokens with 0 log-probs"):
        lm.propose([[1]], 1, PARAMS)


def test_malformed_json_raises_naming_endpoint(server):
    lm = OpenAILM(url(server), role="target")
    server.mode = "malformed"
    with pytest.raises(ServerResponseError, match=r"/v1/completions returned malformed JSON"):
        lm.score([[1]], [[2]])


def test_hung_server_returns_partial_candidates_by_the_deadline(server):
    lm = OpenAILM(url(server), role="draft")
    server.mode = "hang"
    start = time.monotonic()
    params = ProposalParams(delimiter="\n\n", max_new_tokens=8, deadline=start + 0.5)
    [[cand]] = lm.propose([[1]], 1, params)
    assert time.monotonic() - start < 1.5
    assert cand.finish_reason == "deadline" and cand.token_ids == (97,)


def test_hung_server_score_raises_deadline_error_in_time(server):
    lm = OpenAILM(url(server), role="target")
    server.mode = "hang"
    start = time.monotonic()
    with pytest.raises(DeadlineExceededError, match="target server .*before the call's deadline"):
        lm.score([[1]], [[2]], deadline=start + 0.5)
    assert time.monotonic() - start < 1.5


def test_hung_server_without_deadline_times_out(server):
    lm = OpenAILM(url(server), role="draft", timeout_s=0.5)
    server.mode = "hang"
    start = time.monotonic()
    with pytest.raises(ServerUnavailableError, match=r"gave no answer within 0.5 s"):
        lm.propose([[1]], 1, PARAMS)
    assert time.monotonic() - start < 2.0


def test_api_key_sent_but_never_shown(server, monkeypatch):
    monkeypatch.setenv(API_KEY_ENV, "sk-secret-123")
    lm = OpenAILM(url(server), role="target")
    assert server.requests[-1][3]["Authorization"] == "Bearer sk-secret-123"
    server.mode = "unauthorized"
    with pytest.raises(ServerUnavailableError) as err:
        lm.score([[1]], [[2]])
    assert "sk-secret" not in str(err.value) and "sk-secret" not in repr(lm)
    assert API_KEY_ENV in str(err.value)
    server.mode = "echo_key"  # the key comes back in an error body: redacted, never shown
    with pytest.raises(ServerResponseError) as err:
        lm.score([[1]], [[2]])
    assert "HTTP 500" in str(err.value) and "Bearer ***" in str(err.value)
    assert "sk-secret" not in str(err.value)


def test_bad_arguments_are_refused_by_name(server):
    with pytest.raises(ValueError, match="base_url='127.0.0.1:8000'"):
        OpenAILM("127.0.0.1:8000")
    with pytest.raises(ValueError, match="retries=-1"):
        OpenAILM(url(server), retries=-1)
    lm = OpenAILM(url(server))
    with pytest.raises(ConfigError, match="num_candidates=0"):
        lm.propose([[1]], 0, PARAMS)


def test_the_names_docs_showed_before_still_import_as_the_same_classes():
    from specs_engine.backends.openai import lm, reward

    assert lm.OpenAICompatLM is OpenAILM
    assert reward.RemoteStepTokenPRM is reward.OpenAIStepTokenPRM
    assert reward.RemoteSequenceClassifierReward is reward.OpenAISequenceClassifierReward
