"""The budget under load: 16 calls from threads and 16 from asyncio at once on one engine.

Tiny real models (benchmarks/engine_bench.py's, endless so the deadline ends every call),
1 s budgets, with and without CPU-bound processes beside the engine, for each torch
intra-op thread count asked for. Per setting it prints, as the caller sees it:
    p50/p95/max overrun   caller's elapsed time minus the budget
    uncounted             caller's elapsed time minus stats.wall_s (time outside the clock)
    queue                 stats.queue_s (waiting for the shared models), p95
    exceptions, cross-talk (a result whose prompt_tokens are another call's), and empty
    answers (calls that queued until their deadline without writing a step)
and the bound the issue sets: 10% of the budget, or one target forward where that is longer.
Figures go to benchmarks/results/load_bench.json (benchmarks/artefact.py).

Usage (a quiet machine; the README quotes its figures):
    HF_HUB_OFFLINE=1 OMP_WAIT_POLICY=PASSIVE python benchmarks/load_bench.py --rounds 5
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from artefact import write_artefact  # noqa: E402
from engine_bench import PROMPT, build_engine  # noqa: E402

from specs_engine import Budget, SpecsConfig, SpecsEngine  # noqa: E402

THREADS, TASKS = 16, 16
CONFIG = SpecsConfig(max_step_tokens=32)


def burn() -> None:
    """A CPU-bound neighbour: pure Python arithmetic, forever."""
    x = 0
    while True:
        x = (x * 1103515245 + 12345) % 2**31


def prompts(engine: SpecsEngine) -> list[tuple[str, int]]:
    """One prompt per concurrent call, each a different length, with its token count (a
    result reporting another count got another call's prompt: cross-talk)."""
    out = []
    for i in range(THREADS + TASKS):
        text = f"{PROMPT} Call {i}:" + " and" * i
        out.append((text, len(engine.target.encode_prompt(text))))
    return out


def one_call(engine: SpecsEngine, prompt: str, tokens: int, budget_s: float, seed: int) -> dict:
    started = time.monotonic()
    try:
        result = engine.generate(prompt, config=CONFIG.with_overrides(seed=seed),
                                 budget=_budget(budget_s))
    except Exception as exc:  # counted and shown: the load test must see every failure
        return {"error": f"{type(exc).__name__}: {exc}"}
    return _row(result, time.monotonic() - started, tokens, budget_s)


async def one_async_call(engine: SpecsEngine, prompt: str, tokens: int, budget_s: float,
                         seed: int) -> dict:
    started = time.monotonic()
    try:
        result = await engine.agenerate(prompt, config=CONFIG.with_overrides(seed=seed),
                                        budget=_budget(budget_s))
    except Exception as exc:
        return {"error": f"{type(exc).__name__}: {exc}"}
    return _row(result, time.monotonic() - started, tokens, budget_s)


def _budget(budget_s: float) -> Budget:
    return Budget(latency_s=budget_s, max_steps=10_000, max_new_tokens=100_000)


def _row(result, elapsed: float, tokens: int, budget_s: float) -> dict:
    return {"overrun_s": elapsed - budget_s, "uncounted_s": elapsed - result.stats.wall_s,
            "queue_s": result.stats.queue_s, "cross_talk": result.stats.prompt_tokens != tokens,
            "stop": result.stop_reason, "empty": not result.steps}


def one_round(engine: SpecsEngine, cases: list[tuple[str, int]], budget_s: float, seed: int) -> list[dict]:
    """16 threads and 16 asyncio tasks, started together."""
    rows: list[dict] = []
    lock = threading.Lock()

    def thread_call(i: int) -> None:
        row = one_call(engine, *cases[i], budget_s, seed + i)
        with lock:
            rows.append(row)

    async def tasks() -> None:
        found = await asyncio.gather(*(one_async_call(engine, *cases[THREADS + i], budget_s, seed + THREADS + i)
                                       for i in range(TASKS)))
        with lock:
            rows.extend(found)

    workers = [threading.Thread(target=thread_call, args=(i,)) for i in range(THREADS)]
    workers.append(threading.Thread(target=asyncio.run, args=(tasks(),)))
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return rows


def forward_s(engine: SpecsEngine) -> float:
    """One target verification prefill, alone (median of 5): the smallest step the
    engine cannot cut, so an overrun shorter than it cannot be asked for."""
    ids = engine.target.encode_prompt(PROMPT)
    times = []
    for _ in range(5):
        started = time.perf_counter()
        engine.target.score([ids], [ids[-8:]])
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def summary(rows: list[dict], budget_s: float, forward: float) -> dict:
    ok = [r for r in rows if "error" not in r]
    errors = [r["error"] for r in rows if "error" in r]
    pct = lambda values, q: sorted(values)[min(len(values) - 1, int(q * len(values)))] if values else None  # noqa: E731
    over = [r["overrun_s"] for r in ok]
    bound, bound_is = max(0.1 * budget_s, forward), ("one forward" if forward > 0.1 * budget_s else "10% of budget")
    return {
        "calls": len(rows), "exceptions": len(errors), "first_exception": errors[0] if errors else None,
        "cross_talk": sum(r["cross_talk"] for r in ok),
        "empty_answers": sum(r["empty"] for r in ok),
        "overrun_p50_s": pct(over, 0.5), "overrun_p95_s": pct(over, 0.95), "overrun_max_s": max(over, default=None),
        "uncounted_p95_s": pct([r["uncounted_s"] for r in ok], 0.95),
        "uncounted_max_s": max((r["uncounted_s"] for r in ok), default=None),
        "queue_p95_s": pct([r["queue_s"] for r in ok], 0.95),
        "bound_s": bound, "bound_is": bound_is,
        "holds": bool(over) and not errors and pct(over, 0.95) <= bound,
    }


def measure(engine: SpecsEngine, threads: int, hogs: int, rounds: int, budget_s: float) -> dict:
    torch.set_num_threads(threads)
    forward = forward_s(engine)
    neighbours = [multiprocessing.get_context("spawn").Process(target=burn, daemon=True) for _ in range(hogs)]
    for process in neighbours:
        process.start()
    try:
        cases = prompts(engine)
        rows = [row for r in range(rounds) for row in one_round(engine, cases, budget_s, seed=1000 * r)]
    finally:
        for process in neighbours:
            process.kill()
            process.join()
    return {"torch_threads": threads, "cpu_bound_neighbours": hogs, "forward_s": forward,
            **summary(rows, budget_s, forward)}


def show(figures: dict) -> None:
    f = figures
    fmt = lambda s: "-" if s is None else f"{s * 1e3:.0f} ms"  # noqa: E731
    print(f"torch threads {f['torch_threads']}, {f['cpu_bound_neighbours']} CPU-bound neighbour(s): "
          f"{f['calls']} calls, overrun p50 {fmt(f['overrun_p50_s'])} p95 {fmt(f['overrun_p95_s'])} "
          f"max {fmt(f['overrun_max_s'])}; uncounted p95 {fmt(f['uncounted_p95_s'])} max "
          f"{fmt(f['uncounted_max_s'])}; queue p95 {fmt(f['queue_p95_s'])}; exceptions "
          f"{f['exceptions']}, cross-talk {f['cross_talk']}, empty answers {f['empty_answers']}; bound {fmt(f['bound_s'])} "
          f"({f['bound_is']}, forward {fmt(f['forward_s'])}): {'holds' if f['holds'] else 'FAILS'}")
    if f["first_exception"]:
        print(f"  first exception: {f['first_exception']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="rounds of 32 concurrent calls per setting")
    parser.add_argument("--budget-s", type=float, default=1.0)
    parser.add_argument("--torch-threads", default="1,2", help="comma-separated intra-op thread counts")
    parser.add_argument("--hogs", type=int, default=1, help="CPU-bound neighbour processes in the loaded runs")
    parser.add_argument("--no-artefact", action="store_true", help="print only (a trial run)")
    args = parser.parse_args()
    torch.set_num_interop_threads(1)
    settings = []
    with tempfile.TemporaryDirectory() as root:
        engine = build_engine(Path(root), endless=True).warm_up()
        for threads in (int(t) for t in args.torch_threads.split(",")):
            for hogs in (0, args.hogs):
                settings.append(measure(engine, threads, hogs, args.rounds, args.budget_s))
                show(settings[-1])
    if not args.no_artefact:
        path = write_artefact("load_bench", {"budget_s": args.budget_s, "rounds": args.rounds,
                                             "calls_per_round": THREADS + TASKS, "settings": settings},
                              notes="p95 overrun as the caller sees it; bound = max(10% of budget, one forward)")
        print(f"figures in {path}")


if __name__ == "__main__":
    main()
