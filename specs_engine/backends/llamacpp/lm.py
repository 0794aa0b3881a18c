"""LlamaCppLM: a draft or target model running a GGUF file in llama.cpp (backend="llama.cpp").

    >>> lm = LlamaCppLM("qwen2.5-coder-0.5b-instruct-q4_k_m.gguf")
    >>> prefix = lm.encode_prompt([{"role": "user", "content": "What is 2 + 3?"}])
    >>> params = ProposalParams(delimiter="\\n\\n", max_new_tokens=128, temperature=0.7, seed=0)
    >>> [cands] = lm.propose([prefix], 4, params)            # 4 candidate steps, one batch
    >>> lm.score([prefix] * 4, [c.token_ids for c in cands])  # per-token log-probs

The same contract as TransformersLM, on llama.cpp's own kernels (quantised weights, no
de-quantised copy). A prefix is prefilled once into a sequence of the context's KV pool;
its n candidates are n sequences sharing the prefix's cells and decode together, one
llama_decode per token for the whole batch. Scoring runs every candidate of a prefix in
one batch over the prefix's cells. Sampling goes through the same sample_next and the
same candidate rules as TransformersLM, so equal logits give equal candidates.
score_with_states and propose(with_states=True) also read the final norm's output (what a
reward probe on the target reads) at a continuation's last token, or `offset` tokens
before it, off those decodes: llama.cpp's embeddings, switched on for just those
llama_decode calls (pooling NONE: one row per output token).
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import threading
from pathlib import Path
from typing import Any, Callable, Iterator, Optional, Sequence

import numpy as np

from specs_engine.call_context import queued
from specs_engine.backends.candidates import (
    Row, batches_by_room, check_messages, check_proposal, decode_rows, group_pairs, past,
    to_candidate,
)
from specs_engine.backends.llamacpp.native import KVFullError, Native, Output, Token, default_threads, import_llama_cpp
from specs_engine.backends.llamacpp.sequences import CachedSequence, SequencePool
from specs_engine.backends.sampling import sample_next, seeded_generator, torch  # TransformersLM's too
from specs_engine.errors import ConfigError, SpecsError
from specs_engine.models import Candidate, Prompt, ProposalParams, check_state_offset


class LlamaCppLM:
    """A LanguageModel over one GGUF file (see module docstring).

    n_ctx: KV cells of the pool all sequences share (prompt, beams, candidates, cached
    prefixes); n_seq_max: sequences (cached prefixes + candidates decoding at once);
    n_batch: most tokens per llama_decode; n_threads: default every usable core;
    kv_type: "f16" (llama.cpp's default: half the memory, log-probs off by ~1e-2 from f32
    attention) or "f32" (plain f32 attention, for checks against another runtime).
    """

    def __init__(self, path: str | os.PathLike, *, name: Optional[str] = None, n_ctx: int = 8192,
                 n_batch: int = 512, n_seq_max: int = 64, n_threads: Optional[int] = None,
                 cache_size: int = 16, kv_type: str = "f16"):
        path = os.fspath(path)
        if kv_type not in ("f16", "f32"):
            raise ConfigError(f"kv_type={kv_type!r} is not allowed: it must be 'f16' or 'f32'")
        for knob, value in (("n_ctx", n_ctx), ("n_batch", n_batch), ("n_seq_max", n_seq_max)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"{knob}={value!r} is not allowed: it must be an integer >= 1")
        if not 1 < n_seq_max <= 256:
            raise ConfigError(f"n_seq_max={n_seq_max!r} is not allowed: llama.cpp takes 2 to 256 sequences")
        self.native = Native(path, n_ctx=n_ctx, n_batch=n_batch, n_seq_max=n_seq_max,
                             n_threads=n_threads or default_threads(), kv_type=kv_type)
        self.name = name or os.path.basename(path)
        self.context_window = min(self.native.n_ctx_train, self.native.n_ctx)
        self.vocab_size = self.native.vocab_size
        self.hidden_size = self.native.n_embd
        """The size of score_with_states' states (a target probe checks it when attached)."""
        self.eos_token_ids = self.native.end_of_generation_ids()
        self.tokenizer_fingerprint = _fingerprint(self.native, self.eos_token_ids)
        self.chat_template = self.native.metadata("tokenizer.chat_template")
        self.prefill_tokens = self.decode_tokens = self.scored_tokens = 0
        self.lock = threading.RLock()
        self._pool = SequencePool(self.native, cache_size)

    def __repr__(self) -> str:
        return f"LlamaCppLM(name={self.name!r})"

    # ---- encoding -----------------------------------------------------------------

    def encode_prompt(self, prompt: Prompt) -> list[int]:
        """Strings as-is (BOS when the model adds one); chat messages through the GGUF's
        chat template, rendered as transformers renders it, with the assistant turn open."""
        if isinstance(prompt, str):
            ids = self.native.tokenize(prompt, add_special=True, parse_special=True)
        else:
            messages = check_messages(prompt, self.name, self.chat_template is not None)
            ids = self.native.tokenize(self._render(messages), add_special=False, parse_special=True)
        if not ids:
            raise ConfigError(f"prompt={prompt!r} encodes to no tokens: give a non-empty prompt")
        return ids

    def _render(self, messages: list[dict[str, str]]) -> str:
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        eos = self.native.lib.llama_vocab_eos(self.native.vocab)
        bos = self.native.lib.llama_vocab_bos(self.native.vocab)
        formatter = Jinja2ChatFormatter(
            self.chat_template, eos_token=self.native.token_text(eos) if eos >= 0 else "",
            bos_token=self.native.token_text(bos) if bos >= 0 else "", add_generation_prompt=True,
        )
        return formatter(messages=messages).prompt

    def encode(self, text: str) -> list[int]:
        return self.native.tokenize(text, add_special=False, parse_special=True)

    def decode(self, token_ids: Sequence[int]) -> str:
        """Text of token_ids; special tokens (EOS, chat markers) give no text."""
        return self.native.detokenize(token_ids)

    # ---- proposing ----------------------------------------------------------------

    def propose(
        self, prefixes: Sequence[Sequence[int]], num_candidates: int, params: ProposalParams
    ) -> list[list[Candidate]]:
        """num_candidates sampled next steps per prefix. Every prefix's candidates decode
        as ONE batch of sequences (those of a prefix share its KV cells): llama.cpp takes
        each token at its own sequence and position, so beams of different lengths decode
        together with no padding, one llama_decode per token for the whole round, where
        beams decoded one after another paid that per-token call once per beam."""
        checked = check_proposal(prefixes, num_candidates, params, self)
        generator = seeded_generator(params.seed)
        with queued(self.lock, until_deadline=True), self._reset_on_error():
            return batches_by_room(checked, params, self.context_window, lambda batch, limit: self._propose_batch(
                batch, num_candidates, params, limit, generator))

    def _propose_batch(self, prefixes: list[tuple[int, ...]], n: int, params: ProposalParams,
                       limit: int, generator: Any) -> list[list[Candidate]]:
        """n candidates for each prefix, all decoded together; row r extends prefix r // n."""
        states = {p: self._prefix_state(p) for p in dict.fromkeys(prefixes)}  # a duplicate beam prefills once
        owner = [prefixes[r // n] for r in range(n * len(prefixes))]
        seqs = self._pool.acquire(len(owner))
        for prefix, seq in zip(owner, seqs):
            self.native.copy_sequence(states[prefix].seq, seq, len(prefix))

        def finished(rows: list[Row], active: list[int], logits: Any) -> None:
            self.decode_tokens += len(active)
            if not params.with_states:  # else the sequences stay ours until _with_states
                self._remember_finished(owner, rows, active, seqs, logits)

        def step(rows: list[Row], active: list[int], still: list[int]) -> Any:
            going = [active[i] for i in still]
            at = {r: len(owner[r]) + len(rows[r].tokens) - 1 for r in going}  # the newest token's position
            batch = [Token(rows[r].tokens[-1], at[r], seqs[r], True) for r in going]
            undo = lambda: [self.native.drop_sequence(seqs[r], at[r]) for r in going]  # noqa: E731
            out: list[np.ndarray] = []
            self._run(batch, undo, lambda chunk, _: out.append(chunk.logits))
            return torch.from_numpy(np.concatenate(out))

        first = torch.from_numpy(np.stack([states[prefix].last_logits for prefix in owner]))
        rows = decode_rows(
            len(owner), first, params, limit, self.eos_token_ids, self.decode,
            lambda logits: sample_next(logits, params.temperature, params.top_p, params.greedy, generator),
            finished, step,
        )
        candidates = [to_candidate(row, self.decode) for row in rows]
        if params.with_states and not past(params.deadline):
            candidates = self._with_states(owner, candidates, seqs, params.state_offset)
        elif params.with_states:  # out of time: the search salvages the round, reading no state
            for seq in seqs:
                self._pool.release(seq)
        for state in states.values():
            self._pool.put(state)  # the prefixes themselves stay the most recently used
        return [candidates[k : k + n] for k in range(0, len(candidates), n)]

    def _with_states(self, owner: list[tuple[int, ...]], candidates: list[Candidate], seqs: list[int],
                     offset: int) -> list[Candidate]:
        """The candidates with their final hidden state `offset` tokens before their last
        token (owner[r]: row r's prefix). Decoding sampled the last token but never fed it,
        and fed the others without states: ONE batched llama_decode feeds every candidate's
        last offset + 1 tokens into its sequence (cut back to the prefix and the tokens
        before them), reading the state of the first fed one and the logits after the last.
        Each sequence is then cached as prefix + candidate with those logits, so the next
        step on an accepted candidate prefills nothing. A candidate of offset tokens or
        fewer (empty included) gets None; a non-empty one still feeds all its tokens, to be
        cached whole."""
        rows = [r for r, c in enumerate(candidates) if c.token_ids]
        for r in set(range(len(candidates))) - set(rows):
            self._pool.release(seqs[r])
        if not rows:
            return candidates
        fed = {r: candidates[r].token_ids[-(offset + 1):] for r in rows}
        at = {r: len(owner[r]) + len(candidates[r].token_ids) - len(fed[r]) for r in rows}
        for r in rows:  # a candidate cut before a stop string has decoded past its end
            self.native.drop_sequence(seqs[r], at[r])
        # every fed token an output (with embeddings on, llama.cpp computes them all anyway)
        batch = [Token(t, at[r] + k, seqs[r], True) for r in rows for k, t in enumerate(fed[r])]
        starts = np.cumsum([0] + [len(fed[r]) for r in rows]).tolist()  # each row's first in batch
        outputs: list[Output] = []
        reset = lambda: [self.native.drop_sequence(seqs[r], at[r]) for r in rows]  # noqa: E731
        self._run(batch, reset, lambda chunk, _: outputs.append(chunk), states=True)
        logits = np.concatenate([o.logits for o in outputs])
        found = np.concatenate([o.states for o in outputs])
        self.decode_tokens += len(batch)
        for j, r in enumerate(rows):  # the logits after a row's last token: its next step's
            after = logits[starts[j + 1] - 1]
            self._pool.put(CachedSequence(owner[r] + candidates[r].token_ids, seqs[r], after))
        states = {r: found[starts[j]] for j, r in enumerate(rows) if len(fed[r]) > offset}
        return [dataclasses.replace(c, state=states.get(r)) for r, c in enumerate(candidates)]

    def _remember_finished(self, owner: list[tuple[int, ...]], rows: list[Row], active: list[int],
                           seqs: list[int], logits: Any) -> None:
        """A finished row's sequence holds the KV of every token but its last: it becomes
        a cached prefix as it is (owner[r] + the row's tokens), so the next step on that
        candidate prefills one token."""
        for i, r in enumerate(active):
            row = rows[r]
            if row.finish is None:
                continue
            if len(row.tokens) < 2:
                self._pool.release(seqs[r])
                continue
            ids = owner[r] + tuple(row.tokens[:-1])
            self._pool.put(CachedSequence(ids, seqs[r], logits[i].numpy().copy()))

    # ---- scoring ------------------------------------------------------------------

    def score(
        self, prefixes: Sequence[Sequence[int]], continuations: Sequence[Sequence[int]],
        *, deadline: Optional[float] = None,
    ) -> list[list[float]]:
        """Per-token log p(continuation | prefix). Pairs sharing a prefix run as one batch
        of sequences over that prefix's cells. `deadline` is ignored: an in-process prefill
        cannot hang, and is not cut short."""
        return self._score(prefixes, continuations, offset=None)[0]

    def score_with_states(
        self, prefixes: Sequence[Sequence[int]], continuations: Sequence[Sequence[int]],
        *, deadline: Optional[float] = None, offset: int = 0,
    ) -> tuple[list[list[float]], list[Any]]:
        """score(), plus each pair's final (post-norm) hidden state `offset` tokens before
        its continuation's last token (float32 numpy [n_embd]; None for a continuation of
        offset tokens or fewer), read off the same llama_decode calls, where every scored
        token is an output anyway: a reward probe on the target costs no extra pass."""
        return self._score(prefixes, continuations, offset=check_state_offset(offset, "offset"))

    def _score(self, prefixes: Sequence[Sequence[int]], continuations: Sequence[Sequence[int]],
               offset: Optional[int]) -> tuple[list[list[float]], list[Any]]:
        """Scores, and with an offset (None: no states) the states score_with_states reads."""
        groups, conts = group_pairs(prefixes, continuations, self)
        out: list[list[float]] = [[] for _ in conts]
        hidden: list[Any] = [None for _ in conts]
        with queued(self.lock, until_deadline=True), self._reset_on_error():
            for prefix, members in groups.items():
                scored = self._score_group(prefix, [conts[i] for i in members], offset)
                for i, scores, state in zip(members, *scored):
                    out[i], hidden[i] = scores, state
        return out, hidden

    def _score_group(self, prefix: tuple[int, ...], conts: list[tuple[int, ...]],
                     offset: Optional[int] = None) -> tuple[list[list[float]], list[Any]]:
        state = self._prefix_state(prefix)
        first = _log_softmax(state.last_logits[None])[0]
        rows = [i for i, c in enumerate(conts) if c]
        out: list[list[float]] = [[] for _ in conts]
        hidden: list[Any] = [None for _ in conts]
        if not rows:
            self._pool.put(state)
            return out, hidden
        seqs = self._pool.acquire(len(rows))
        for seq in seqs:
            self.native.copy_sequence(state.seq, seq, len(prefix))
        batch = [Token(t, len(prefix) + k, seq, True) for i, seq in zip(rows, seqs) for k, t in enumerate(conts[i])]
        # each scored token's next token in its continuation; -1 at a continuation's end
        following = np.array([t for i in rows for t in (*conts[i][1:], -1)])
        ends = (np.cumsum([len(conts[i]) for i in rows]) - 1).tolist()  # each row's last token in batch
        read = [] if offset is None else [e - offset for e, i in zip(ends, rows) if len(conts[i]) > offset]
        reset = lambda: [self.native.drop_sequence(seq, len(prefix)) for seq in seqs]  # noqa: E731
        picked, end_logits, found = [], {}, {}

        def keep(chunk: Output, at: int) -> None:  # chunk by chunk: never all logits at once
            rows_next = following[at : at + len(chunk.logits)]
            picked.append(_picked_logprobs(chunk.logits, np.maximum(rows_next, 0)))
            end_logits.update({at + j: chunk.logits[j].copy() for j in np.flatnonzero(rows_next < 0)})
            found.update({k: chunk.states[k - at].copy() for k in read if at <= k < at + len(chunk.logits)})

        self._run(batch, reset, keep, states=offset is not None)
        scores, at = np.concatenate(picked), 0
        for i, seq, end in zip(rows, seqs, ends):
            cont = conts[i]
            out[i] = [float(first[cont[0]])] + scores[at : at + len(cont) - 1].tolist()
            at += len(cont)
            if offset is not None and len(cont) > offset:
                hidden[i] = found[end - offset]
            self._pool.put(CachedSequence(prefix + cont, seq, end_logits[end]))
        self.scored_tokens += len(batch)
        self._pool.put(state)
        return out, hidden

    # ---- the prefix cache -----------------------------------------------------------

    def _prefix_state(self, prefix: tuple[int, ...]) -> CachedSequence:
        """A sequence holding prefix and the logits after it, prefilling only what no
        cached prefix already covers (at least the last token, for its logits). It is
        checked out of the cache: the caller puts it back when done with it."""
        [seq] = self._pool.acquire(1)  # first: acquiring may evict, the match must survive
        entry, shared = self._pool.longest_match(prefix)
        if entry is not None and shared == len(prefix) == len(entry.ids):
            self._pool.release(seq)
            return self._pool.take(entry)
        start = min(shared, len(prefix) - 1)
        if entry is not None:
            self.native.copy_sequence(entry.seq, seq, start)
        batch = [Token(t, start + k, seq, k == len(prefix) - start - 1) for k, t in enumerate(prefix[start:])]
        last: list[np.ndarray] = []
        self._run(batch, lambda: self.native.drop_sequence(seq, start), lambda out, at: last.append(out.logits))
        self.prefill_tokens += len(batch)
        return CachedSequence(prefix, seq, last[-1][-1].copy())

    def _run(self, batch: list[Token], reset: Callable[[], Any],
             keep: Callable[[Output, int], None], states: bool = False) -> None:
        """Decode batch in n_batch chunks, handing each chunk's output (the logits, and the
        states when asked, of the tokens with logits=True) and its first token's index to
        keep. When the KV pool is full, drop the oldest cached prefix, undo the partial work
        (reset) and run again."""
        size = self.native.n_batch
        while True:
            try:
                for at in range(0, len(batch), size):
                    keep(self.native.decode(batch[at : at + size], states=states), at)
                return
            except KVFullError:
                reset()
                if not self._pool.evict_oldest():
                    raise SpecsError(
                        f"{self.name!r}: {len(batch)} tokens do not fit in the llama.cpp KV pool "
                        f"(n_ctx={self.native.n_ctx}) even with no prefix cached: load it with a larger n_ctx"
                    ) from None

    @contextlib.contextmanager
    def _reset_on_error(self) -> Iterator[None]:
        """A call that fails half-way leaves sequences no one owns: start clean instead."""
        try:
            yield
        except BaseException:
            self._pool.reset()
            raise

    def clear_cache(self) -> None:
        """Drop every cached prefix (frees their KV cells)."""
        with self.lock:
            self._pool.clear()




def _log_softmax(logits: np.ndarray) -> np.ndarray:
    """float32 [rows, vocab] -> log-probs, as torch.log_softmax computes them."""
    shifted = logits - logits.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def _picked_logprobs(logits: np.ndarray, ids: np.ndarray, rows_at_once: int = 64) -> np.ndarray:
    """log_softmax(logits)[r, ids[r]] per row, a few rows at a time (a vocabulary-wide
    temporary per row is 0.6 MB for Qwen: 512 rows at once would be 300 MB)."""
    out = np.empty(len(ids), np.float32)
    for k in range(0, len(ids), rows_at_once):
        block = logits[k : k + rows_at_once]
        out[k : k + rows_at_once] = _log_softmax(block)[np.arange(len(block)), ids[k : k + rows_at_once]]
    return out


def _fingerprint(native: Native, eos_ids: frozenset[int]) -> str:
    """A hash of every token's text, the control tokens and the end-of-generation ids:
    equal means token ids mean the same text in two GGUF models."""
    payload = {
        "vocab": [native.token_text(t) for t in range(native.vocab_size)],
        "control": [t for t in range(native.vocab_size) if native.is_control(t)],
        "eog": sorted(eos_ids),
    }
    return hashlib.sha256(json.dumps(payload, ensure_ascii=False).encode()).hexdigest()[:16]


def load(location: str, *, dtype: Any = None, device: str = "cpu", **kwargs: Any) -> Any:
    """The backend entry point used by specs_engine.backends.load_language_model. dtype is
    ignored: a GGUF file carries its own (quantised) tensor types."""
    if device != "cpu":
        raise ConfigError(f"device={device!r} is not allowed for backend='llama.cpp': it runs on 'cpu'")
    path = gguf_path(location)
    import_llama_cpp()  # a missing llama-cpp-python names its install command here
    return LlamaCppLM(path, **kwargs)


def gguf_path(location: str) -> Path:
    """The GGUF file a location names; refuses anything else before llama.cpp starts."""
    path = Path(location).expanduser()
    if path.is_file() and path.suffix == ".gguf":
        return path
    if path.is_dir():
        found = sorted(path.glob("*.gguf"))
        if len(found) == 1:
            return found[0]
        raise ConfigError(
            f"location={location!r} holds {len(found)} .gguf files "
            f"({', '.join(p.name for p in found) or 'none'}): backend='llama.cpp' needs exactly one "
            f"(or pass the file itself)"
        )
    raise ConfigError(
        f"location={location!r} is not a .gguf file nor a directory holding one: backend='llama.cpp' "
        f"loads GGUF files only (use backend='transformers' for safetensors directories)"
    )
