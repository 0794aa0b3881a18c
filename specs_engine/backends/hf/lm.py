"""TransformersLM: a draft or target model running in-process with Hugging Face transformers.

    >>> lm = TransformersLM.from_pretrained("path/to/Qwen2.5-0.5B-Instruct", dtype="bfloat16")
    >>> prefix = lm.encode_prompt([{"role": "user", "content": "What is 2 + 3?"}])
    >>> params = ProposalParams(delimiter="\\n\\n", max_new_tokens=128, temperature=0.7, seed=0)
    >>> [cands] = lm.propose([prefix], 4, params)          # 4 candidate steps, one batch
    >>> lm.score([prefix] * 4, [c.token_ids for c in cands])  # per-token log-probs

Each prefix is prefilled once (batch 1, through the prefix cache) and every prefix's
candidates decode as ONE batch: one forward per token for the whole round, where beams
decoded one after another paid a forward per token per beam (the width a GPU needs).
Prefixes of different lengths are left-padded in the round's cache and masked, each row
placed by its own positions; finished rows go back to the prefix cache without their
padding, so the next step still prefills (almost) nothing. Rows stop at the delimiter,
EOS, a stop string, the token limit or the deadline.
score_with_states and propose(with_states=True) also return the final (post-norm) hidden
state at each continuation's last token, or `offset` tokens before it, from the scoring
forward itself.
"""

from __future__ import annotations

import dataclasses
import os
import threading
from typing import Any, Optional, Sequence

from specs_engine.call_context import check_deadline, queued
from specs_engine.backends.candidates import (
    Row, batches_by_room, check_messages, check_prefix, check_proposal, decode_rows, group_pairs, past,
    to_candidate, tokenizer_fingerprint,
)
from specs_engine.backends.hf.common import import_torch, import_transformers, load_model, load_tokenizer
from specs_engine.errors import ConfigError
from specs_engine.models import Candidate, Prompt, ProposalParams, check_state_offset

torch = import_torch()  # raises MissingExtraError("torch", "transformers") when absent

from specs_engine.backends.hf.kv_cache import (  # noqa: E402  (needs torch)
    KV, CachedPrefix, PrefixCache, forward_with_cache, kv_of, left_padded_cache, ragged_cache, row_kv,
    to_dynamic_cache,
)
from specs_engine.backends.sampling import sample_next, seeded_generator  # noqa: E402

MAX_LOGITS_ELEMENTS = 2**27
"""Largest logits tensor one scoring forward may produce (rows are chunked to fit)."""


class TransformersLM:
    """A LanguageModel over an AutoModelForCausalLM and its tokenizer (see module docstring)."""

    def __init__(self, model: Any, tokenizer: Any, name: Optional[str] = None, cache_size: int = 16):
        self.model = model
        """The causal LM; callers must hold `lock` while using it directly."""
        self.tokenizer = tokenizer
        self.name = name or getattr(model.config, "name_or_path", "") or type(model).__name__
        self.device = next(model.parameters()).device
        self.context_window = context_window(model.config, tokenizer)
        self.tokenizer_fingerprint = tokenizer_fingerprint(tokenizer)
        self.eos_token_ids = eos_token_ids(model, tokenizer)
        self.pad_token_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        self.vocab_size = model.get_output_embeddings().weight.shape[0]
        self.hidden_size = int(model.config.get_text_config().hidden_size)
        """The size of score_with_states' states (a target probe checks it when attached)."""
        self.prefill_tokens = 0
        """Prompt/prefix tokens run through the model outside decoding (cache misses)."""
        self.decode_tokens = 0
        self.scored_tokens = 0
        self.lock = threading.RLock()
        self.tokenizer_lock = threading.RLock()
        """Held for tokenizer calls only (a tokenizer's padding state is shared mutable
        state), so a call encodes its prompt without queueing behind other calls' decoding
        under `lock`. Order: lock, then tokenizer_lock; never the other way round."""
        self._prefixes = PrefixCache(cache_size)

    @classmethod
    def from_pretrained(
        cls, location: str | os.PathLike, dtype: Any = "bfloat16", device: str = "cpu",
        trust_remote_code: bool = False, allow_pickle: bool = False,
        gguf_file: Optional[str] = None, name: Optional[str] = None, cache_size: int = 16,
    ) -> TransformersLM:
        """Load from a local directory (or a hub id when the hub is reachable).

        Weights must be safetensors (or GGUF) unless allow_pickle=True; remote code runs
        only with trust_remote_code=True.
        """
        location = os.fspath(location)
        transformers = import_transformers()
        model = load_model(
            transformers.AutoModelForCausalLM, location, dtype=dtype, device=device,
            trust_remote_code=trust_remote_code, allow_pickle=allow_pickle, gguf_file=gguf_file,
        )
        tokenizer = load_tokenizer(location, trust_remote_code, gguf_file)
        return cls(model, tokenizer, name=name or _default_name(location, gguf_file), cache_size=cache_size)

    def __repr__(self) -> str:
        return f"TransformersLM(name={self.name!r}, device={str(self.device)!r})"

    # ---- encoding -----------------------------------------------------------------

    def encode_prompt(self, prompt: Prompt) -> list[int]:
        """Strings are encoded as-is (with BOS if the tokenizer adds one); chat messages go
        through the chat template with the assistant turn opened."""
        with self.tokenizer_lock:
            if isinstance(prompt, str):
                ids = self.tokenizer(prompt, add_special_tokens=True)["input_ids"]
            else:
                text = self.tokenizer.apply_chat_template(
                    check_messages(prompt, self.name, getattr(self.tokenizer, "chat_template", None) is not None),
                    add_generation_prompt=True, tokenize=False,
                )
                ids = self.tokenizer(text, add_special_tokens=False)["input_ids"]
        if not ids:
            raise ConfigError(f"prompt={prompt!r} encodes to no tokens: give a non-empty prompt")
        return list(ids)

    def encode(self, text: str) -> list[int]:
        with self.tokenizer_lock:
            return list(self.tokenizer.encode(text, add_special_tokens=False))

    def decode(self, token_ids: Sequence[int]) -> str:
        with self.tokenizer_lock:
            return self.tokenizer.decode(list(token_ids), skip_special_tokens=True)

    # ---- proposing ----------------------------------------------------------------

    def propose(
        self, prefixes: Sequence[Sequence[int]], num_candidates: int, params: ProposalParams
    ) -> list[list[Candidate]]:
        """num_candidates sampled next steps per prefix, every prefix's candidates in one
        batch (see the module docstring)."""
        checked = check_proposal(prefixes, num_candidates, params, self)
        generator = seeded_generator(params.seed, self.device)
        with queued(self.lock, until_deadline=True), torch.inference_mode():
            return batches_by_room(checked, params, self.context_window, lambda batch, limit: self._propose_batch(
                batch, num_candidates, params, limit, generator))

    def _propose_batch(self, prefixes: list[tuple[int, ...]], n: int, params: ProposalParams,
                       limit: int, generator: Any) -> list[list[Candidate]]:
        """n candidates for each prefix, all decoded together; row r extends prefix r // n."""
        states = {p: self._prefix_state(p) for p in dict.fromkeys(prefixes)}  # a duplicate beam prefills once
        owner = [prefixes[r // n] for r in range(n * len(prefixes))]
        cache, mask = self._decoding_cache(prefixes, states, n)
        width = max(len(p) for p in prefixes)
        padding = [width - len(p) for p in owner]
        tails: dict[int, KV] = {}  # row -> the KV of its own tokens, when states are wanted

        def finished(rows: list[Row], active: list[int], logits: Any) -> None:
            self.decode_tokens += len(active)
            self._remember_finished(owner, padding, rows, active, cache, logits)
            if params.with_states:
                ended = [i for i, r in enumerate(active) if rows[r].finish is not None]
                tails.update({active[i]: row_kv(kv_of(cache), i, None, copy=True, start=width) for i in ended})

        def step(rows: list[Row], active: list[int], still: list[int]) -> Any:
            nonlocal mask
            going = [active[i] for i in still]
            if len(still) < len(active):
                kept = torch.tensor(still, device=self.device)
                cache.batch_select_indices(kept)
                mask = None if mask is None else mask[kept]
            step_input = torch.tensor([[rows[r].tokens[-1]] for r in going], device=self.device)
            if mask is None:  # no row is padded: the cache's length is every row's position
                return forward_with_cache(self.model, step_input, cache).logits[:, -1].float()
            mask = torch.cat([mask, mask.new_ones(len(going), 1)], dim=1)
            positions = torch.tensor([[len(owner[r]) + len(rows[r].tokens) - 1] for r in going], device=self.device)
            return forward_with_cache(self.model, step_input, cache, attention_mask=mask,
                                      position_ids=positions).logits[:, -1].float()

        first = torch.stack([states[p].last_logits for p in owner])
        rows = decode_rows(
            len(owner), first, params, limit, self.eos_token_ids, self.decode,
            lambda logits: sample_next(logits, params.temperature, params.top_p, params.greedy, generator),
            finished, step,
        )
        for state in states.values():
            self._prefixes.put(state)  # the prefixes themselves stay the most recently used
        candidates = [to_candidate(row, self.decode) for row in rows]
        groups = [candidates[k : k + n] for k in range(0, len(candidates), n)]
        if params.with_states and not past(params.deadline):  # out of time: salvaged, no state read
            return [self._with_states(states[p], group, {j: tails[k * n + j] for j in range(n) if k * n + j in tails},
                                      params.state_offset)
                    for k, (p, group) in enumerate(zip(prefixes, groups))]
        return groups

    def _decoding_cache(self, prefixes: list[tuple[int, ...]], states: dict[tuple[int, ...], CachedPrefix],
                        n: int) -> tuple[Any, Any]:
        """The round's cache (n rows per prefix) and its padding mask (None: no padding)."""
        if len(states) == 1:  # one beam (or copies of it): its KV repeated, nothing to pad
            [state] = states.values()
            return to_dynamic_cache(state.kv, len(state.ids), n * len(prefixes)), None
        cache, mask = left_padded_cache([states[p].kv for p in prefixes], [len(p) for p in prefixes], n)
        return cache, None if mask is None else mask.to(self.device)

    def _with_states(self, state: CachedPrefix, candidates: list[Candidate], tails: dict[int, KV],
                     offset: int) -> list[Candidate]:
        """The candidates with their final hidden state `offset` tokens before their last
        token. Decoding sampled the last token but never fed it, and fed the others without
        states: ONE forward feeds every candidate's last offset + 1 tokens over its own KV
        before them (rows of different lengths, padded and masked) and reads the state of
        the first fed one. A candidate of offset tokens or fewer (empty included) gets None."""
        rows = [r for r, c in enumerate(candidates) if len(c.token_ids) > offset]
        if not rows:
            return candidates
        kept = [len(candidates[r].token_ids) - 1 - offset for r in rows]  # own tokens before the fed
        cache, mask = ragged_cache(state.kv, len(state.ids), [tails[r] for r in rows], kept, new=offset + 1)
        fed = torch.tensor([candidates[r].token_ids[-(offset + 1):] for r in rows], device=self.device)
        positions = torch.tensor([[len(state.ids) + m + k for k in range(offset + 1)] for m in kept],
                                 device=self.device)
        result = forward_with_cache(self.model, fed, cache, attention_mask=mask.to(self.device),
                                    position_ids=positions, output_hidden_states=True)
        self.decode_tokens += fed.numel()
        found = {r: final_state(result, j, 0) for j, r in enumerate(rows)}
        return [dataclasses.replace(c, state=found.get(r)) for r, c in enumerate(candidates)]

    def _remember_finished(
        self, owner: list[tuple[int, ...]], padding: list[int], rows: list[Row], active: list[int],
        cache: Any, logits: Any,
    ) -> None:
        """Cache the KV of rows that just finished (less their left padding), so the next
        step on an accepted candidate prefills (almost) nothing. The cache holds every
        token but the last."""
        kv = None
        for i, r in enumerate(active):
            row = rows[r]
            if row.finish is None or len(row.tokens) < 2 or self._prefixes.capacity <= 0:
                continue
            kv = kv if kv is not None else kv_of(cache)
            ids = owner[r] + tuple(row.tokens[:-1])
            kv_row = row_kv(kv, i, padding[r] + len(ids), copy=True, start=padding[r])
            self._prefixes.put(CachedPrefix(ids, kv_row, logits[i].clone()))

    # ---- scoring ------------------------------------------------------------------

    def score(
        self, prefixes: Sequence[Sequence[int]], continuations: Sequence[Sequence[int]],
        *, deadline: Optional[float] = None,
    ) -> list[list[float]]:
        """Per-token log p(continuation | prefix). Pairs sharing a prefix (the usual case:
        all candidates of one beam) run as one batch over that prefix's cached KV.
        `deadline` is ignored: an in-process prefill cannot hang, and is not cut short."""
        return self._score(prefixes, continuations, offset=None)[0]

    def score_with_states(
        self, prefixes: Sequence[Sequence[int]], continuations: Sequence[Sequence[int]],
        *, deadline: Optional[float] = None, offset: int = 0,
    ) -> tuple[list[list[float]], list[Any]]:
        """score(), plus each pair's final (post-norm) hidden state `offset` tokens before
        its continuation's last token (float32 numpy [hidden]; None for a continuation of
        offset tokens or fewer), read off the same forward (hidden_states holds every
        position): a reward probe on the target costs no extra pass."""
        return self._score(prefixes, continuations, offset=check_state_offset(offset, "offset"))

    def _score(self, prefixes: Sequence[Sequence[int]], continuations: Sequence[Sequence[int]],
               offset: Optional[int]) -> tuple[list[list[float]], list[Any]]:
        """Scores, and with an offset (None: no states) the states score_with_states reads."""
        groups, conts = group_pairs(prefixes, continuations, self)
        out: list[list[float]] = [[] for _ in conts]
        hidden: list[Any] = [None for _ in conts]
        with queued(self.lock, until_deadline=True), torch.inference_mode():
            for prefix, members in groups.items():
                for chunk in self._chunks(members, conts):
                    scored = self._score_group(prefix, [conts[i] for i in chunk], offset)
                    for i, scores, state in zip(chunk, *scored):
                        out[i], hidden[i] = scores, state
        return out, hidden

    def _chunks(self, members: list[int], conts: list[tuple[int, ...]]) -> list[list[int]]:
        """Split a group so no forward materialises more than MAX_LOGITS_ELEMENTS logits."""
        width = max([len(conts[i]) for i in members] + [1])
        size = max(1, MAX_LOGITS_ELEMENTS // (width * self.vocab_size))
        return [members[k : k + size] for k in range(0, len(members), size)]

    def _score_group(self, prefix: tuple[int, ...], conts: list[tuple[int, ...]],
                     offset: Optional[int] = None) -> tuple[list[list[float]], list[Any]]:
        """Scores (and, with an offset, the states it names) of conts over prefix, one forward."""
        state = self._prefix_state(prefix)
        first = torch.log_softmax(state.last_logits, dim=-1)
        rows = [i for i, c in enumerate(conts) if c]
        out: list[list[float]] = [[] for _ in conts]
        hidden: list[Any] = [None for _ in conts]
        if not rows:
            return out, hidden
        batch = torch.full((len(rows), max(len(conts[i]) for i in rows)), self.pad_token_id, device=self.device)
        for j, i in enumerate(rows):
            batch[j, : len(conts[i])] = torch.tensor(conts[i])
        cache = to_dynamic_cache(state.kv, len(prefix), len(rows))
        # Right padding needs no mask: causal attention never lets a real token see a pad.
        result = forward_with_cache(self.model, batch, cache, output_hidden_states=offset is not None)
        logits = result.logits
        kv = kv_of(cache)
        for j, i in enumerate(rows):
            length = len(conts[i])
            rest = torch.log_softmax(logits[j, : length - 1].float(), dim=-1)
            rest = rest.gather(-1, batch[j, 1:length, None]).squeeze(-1)
            out[i] = [float(first[conts[i][0]])] + rest.tolist()
            if offset is not None and length > offset:
                hidden[i] = final_state(result, j, length - 1 - offset)
            ids = prefix + conts[i]
            self._prefixes.put(CachedPrefix(ids, row_kv(kv, j, len(ids), copy=False), logits[j, length - 1].float()))
        self.scored_tokens += sum(len(conts[i]) for i in rows)
        self._prefixes.put(state)
        return out, hidden

    # ---- the prefix cache -----------------------------------------------------------

    def _prefix_state(self, prefix: tuple[int, ...]) -> CachedPrefix:
        """The KV of prefix and the logits after it, prefilling only what no cached
        prefix already covers."""
        return self._extend(prefix)[0]

    def _extend(self, prefix: tuple[int, ...], hidden_states: bool = False) -> tuple[CachedPrefix, Any]:
        """Runs the tokens of prefix that no cached prefix covers (at least the last one,
        unless prefix is cached whole and no hidden states are wanted), caches the result,
        and returns it with the raw model output (None when nothing ran)."""
        hit, start, cache = self._prefixes.resume(prefix, whole=not hidden_states)
        if hit is not None:
            return hit, None
        new = torch.tensor([prefix[start:]], device=self.device)
        out = forward_with_cache(self.model, new, cache, logits_to_keep=1,
                                 output_hidden_states=hidden_states)
        self.prefill_tokens += len(prefix) - start
        state = CachedPrefix(prefix, kv_of(cache), out.logits[0, -1].float())
        self._prefixes.put(state)
        return state, out

    def last_hidden_states(self, sequences: Sequence[Sequence[int]], layer: int = -1) -> Any:
        """float32 [sequences, hidden]: the `layer` hidden state at each sequence's last
        token, for reward heads on this frozen model. Goes through the prefix cache, so a
        solution that extends one scored at the previous step runs only its new tokens."""
        rows = []
        with queued(self.lock, until_deadline=True), torch.inference_mode():
            for i, sequence in enumerate(sequences):
                check_deadline(f"{self.name!r} reading hidden states")  # a reward stops between rows
                ids = check_prefix(sequence, f"sequences[{i}]", self)
                if len(ids) < 2:
                    raise ConfigError(f"sequences[{i}] has {len(ids)} token(s); at least 2 are needed")
                _, out = self._extend(ids, hidden_states=True)
                rows.append(out.hidden_states[layer][0, -1].float())
        return torch.stack(rows)

    def clear_cache(self) -> None:
        """Drop every cached prefix (e.g. to free memory between unrelated prompts)."""
        with self.lock:
            self._prefixes.clear()




def load(location: str, *, dtype: Any = "bfloat16", device: str = "cpu", **kwargs: Any) -> TransformersLM:
    """The backend entry point used by specs_engine.backends.load_language_model."""
    return TransformersLM.from_pretrained(location, dtype=dtype, device=device, **kwargs)


def context_window(config: Any, tokenizer: Any) -> int:
    """Most tokens the model accepts: the config's positions, else the tokenizer's limit."""
    text_config = config.get_text_config() if hasattr(config, "get_text_config") else config
    window = getattr(text_config, "max_position_embeddings", None)
    return int(window or getattr(tokenizer, "model_max_length", 2048))


def eos_token_ids(model: Any, tokenizer: Any) -> frozenset[int]:
    """Every id that ends a solution: the tokenizer's EOS and the generation config's."""
    ids = {tokenizer.eos_token_id}
    configured = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    ids.update(configured if isinstance(configured, (list, tuple)) else [configured])
    return frozenset(i for i in ids if i is not None)


def final_state(result: Any, row: int, position: int) -> Any:
    """float32 numpy [hidden]: the last hidden_states entry (after the final norm: the
    input of the LM head) of one row and position of a forward's output."""
    return result.hidden_states[-1][row, position].float().cpu().numpy()


def _default_name(location: str, gguf_file: Optional[str]) -> str:
    return gguf_file or os.path.basename(os.path.normpath(location)) or location
