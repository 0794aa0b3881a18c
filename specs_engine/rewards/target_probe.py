"""TargetProbe: a reward read off the TARGET's own forward, so it costs no extra model pass.

A linear probe on the target's final post-norm hidden state (the one its LM head reads)
near the end of a step: reward = sigmoid(w . h + b). In a SPECS draft round the target
already runs one scoring forward over every candidate (log p_target); with
StateScorer.score_with_states that forward also returns h, so the reward is a dot
product. Target-proposed steps carry h from their own decode (ProposalParams.with_states).

Which token's state: `state_offset` tokens before the step's last token (the head's
config says; 0: the last token). The shipped probe reads offset 1: for Qwen the last
token of a step carries the delimiter (".\n\n" is one token), whose state says less
about whether the step is right than the token before it (e.g. "7" in "= 7\n\n"):
held-out AUROC (reference steps vs one-number-injected twins, GSM8K tune split) 0.80 at
the last token, 0.91 to 0.93 one token earlier (scripts/train_target_probe.py
--state-offset). Both come from the same forward, so the offset costs nothing.

On disk, a directory of two files (TargetProbe.save writes them; no torch needed here):

    value_head.safetensors   "weight" float [1, H] (or [H]), "bias" float [1]
    specs_reward.json        {
        "type": "target_probe",                  required
        "base_model": <registry name, hub id or path (relative: from this directory)>,
                                                 required: the target whose states it reads
        "hidden_size": H,                        required: the target's hidden size
        "state_offset": N,                       optional, default 0: the state is read N
                                                 tokens before the step's last token
        "feature": <text: which state, in which layout>,     documentary
        "weights_sha256": <sha256 of value_head.safetensors>, checked at load when present
        "held_out": {...},                       documentary (the training script's metrics)
        ... any other key is kept and ignored
    }

The state h is taken in the search's layout: the target's prompt ids (encode_prompt: a
string as-is, chat messages through its chat template), then the token ids of the earlier
steps, then the step's own ids; h is the final post-norm hidden state state_offset tokens
before the step's last token, as score_with_states(offset=state_offset) returns it (a
step of state_offset tokens or fewer: at its first token, as the training script reads
it; an empty step: at the end of what precedes it). A probe is bound to its target
before use (attach: the engine does it when it builds the roles), and is refused, before
any model work, when its base_model is not the run's target or the target's backend
cannot return hidden states (vllm, openai: their completions API gives tokens and
log-probs only).

Steps the search holds no state of (draft steps outside a target scoring pass: rsd,
beam_search on the draft; steps of state_offset tokens or fewer) go through rewards_at:
the bound target's score_with_states over the search's own ids for the beam, an extra
target forward charged as reward time; so do beams that finished unscored and are ranked
at the end. As a plain RewardModel (score(question, solutions): callers outside the
search) it does the same over the texts encoded, the question as a plain string (no chat
template).
"""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np

from specs_engine.call_context import current_deadline
from specs_engine.errors import ConfigError, MissingExtraError
from specs_engine.models import (
    NO_STATE_BACKENDS, STATE_BACKENDS, LanguageModel, StateScorer, check_state_offset,
)
from specs_engine.rewards.formatting import check_solutions
from specs_engine.rewards.head_config import CONFIG_FILE, HEAD_FILE, read_head_config
from specs_engine.sources import model_identity

PROBE_TYPE = "target_probe"
REQUIRED = ("base_model", "hidden_size")


class TargetProbe:
    """reward = sigmoid(w . h + b) on the target's final hidden state near a step's end
    (state_offset tokens before its last token).

        >>> probe = TargetProbe.from_directory("path/to/probe").attach(target, "qwen2.5-coder-1.5b")
        >>> probe.rewards_of(states)           # states from target.score_with_states
        >>> probe.score(question, solutions)   # a RewardModel: one target forward of its own
    """

    def __init__(self, weight: Any, bias: float, *, base_model: str, name: Optional[str] = None,
                 state_offset: int = 0):
        self.weight = np.asarray(weight, dtype=np.float64).reshape(-1)
        self.bias = float(bias)
        self.hidden_size = int(self.weight.size)
        self.base_model = base_model
        self.state_offset = check_state_offset(state_offset, "state_offset")
        """Which state it reads: this many tokens before a step's last token (0: the last)."""
        self.name = name or f"target-probe({base_model})"
        self.target: Optional[LanguageModel] = None
        """The model whose states it reads; set on the copy attach() returns."""

    @classmethod
    def from_directory(cls, path: str | os.PathLike) -> TargetProbe:
        """The probe saved in path (see the module docstring); reads two small files and
        loads no model."""
        meta = read_head_config(path, PROBE_TYPE, REQUIRED)
        config = Path(path) / CONFIG_FILE
        hidden = meta["hidden_size"]
        if isinstance(hidden, bool) or not isinstance(hidden, int) or hidden < 1:
            raise ConfigError(f"{config}: hidden_size={hidden!r} is not allowed: give a positive integer")
        if not isinstance(meta["base_model"], str) or not meta["base_model"].strip():
            raise ConfigError(f"{config}: base_model={meta['base_model']!r} is not allowed: give the "
                              "target's registry name, hub id or directory")
        offset = check_state_offset(meta.get("state_offset", 0), f"{config}: state_offset")
        weight, bias = _read_tensors(Path(path) / HEAD_FILE, hidden, meta.get("weights_sha256"))
        base = meta["base_model"]
        beside = Path(path) / base
        if not Path(base).is_absolute() and beside.exists():
            base = str(beside.resolve())  # a relative path is read from the head's directory
        return cls(weight, bias, base_model=base, name=f"target-probe({Path(path).name})",
                   state_offset=offset)

    def save(self, path: str | os.PathLike, **meta: Any) -> Path:
        """Writes the two files into directory path (meta: feature, held_out, ... go into
        the config as given); weights_sha256 is computed here, so a load checks it."""
        from safetensors.numpy import save_file

        from specs_engine.file_hashes import sha256_file

        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        tensors = {"weight": self.weight.astype(np.float32).reshape(1, -1),
                   "bias": np.asarray([self.bias], dtype=np.float32)}
        save_file(tensors, str(path / HEAD_FILE))
        config = {"type": PROBE_TYPE, "base_model": self.base_model, "hidden_size": self.hidden_size,
                  **meta, "state_offset": self.state_offset, "weights_sha256": sha256_file(path / HEAD_FILE)}
        (path / CONFIG_FILE).write_text(json.dumps(config, indent=1))
        return path

    def __repr__(self) -> str:
        target = None if self.target is None else self.target.name
        return f"TargetProbe(name={self.name!r}, base_model={self.base_model!r}, target={target!r})"

    # ---- binding to the run's target ------------------------------------------------

    def check_target(self, location: str | os.PathLike, backend: Optional[str] = None) -> None:
        """Refuses, before any model loads, a target this probe cannot read: another
        model than its base (locations compared once resolved), or a backend whose models
        do not return hidden states."""
        if backend in NO_STATE_BACKENDS:
            raise ConfigError(
                f"reward {self.name!r} reads the target's hidden states, which backend={backend!r} "
                "cannot reach: its completions API returns tokens and log-probs, not hidden states; "
                f"run the target on {' or '.join(STATE_BACKENDS)}, or use another reward"
            )
        if model_identity(location) != model_identity(self.base_model):
            raise ConfigError(
                f"reward {self.name!r} is a probe on base_model={self.base_model!r}, but the run's "
                f"target is {os.fspath(location)!r}: a probe reads only the hidden states of the model "
                f"it was trained on; use {self.base_model!r} as the target, or a probe trained on "
                f"{os.fspath(location)!r}"
            )

    def attach(self, target: LanguageModel, location: str | os.PathLike,
               backend: Optional[str] = None) -> TargetProbe:
        """A copy of this probe reading `target`, loaded from `location` (checked against
        base_model). The loaded probe stays unbound, so engines on other targets of the
        same base can share it."""
        self.check_target(location, backend)
        if not isinstance(target, StateScorer):
            raise ConfigError(
                f"reward {self.name!r} reads the target's hidden states, but target "
                f"{getattr(target, 'name', target)!r} ({type(target).__name__}) has no score_with_states: "
                f"hidden states are not reachable from a served completions API "
                f"({', '.join(NO_STATE_BACKENDS)}); the backends that return them are "
                f"{' and '.join(STATE_BACKENDS)}"
            )
        size = getattr(target, "hidden_size", None)
        if isinstance(size, int) and size != self.hidden_size:
            raise ConfigError(self._size_error(size, f"target {target.name!r} has"))
        bound = copy.copy(self)
        bound.target = target
        return bound

    # ---- rewards ----------------------------------------------------------------------

    def rewards_of(self, states: Sequence[Any]) -> list[float]:
        """The reward of each step from its hidden state (float [hidden] each, read
        state_offset tokens before the step's last token)."""
        if len(states) == 0:
            return []
        rows = [np.asarray(state, dtype=np.float64).reshape(-1) for state in states]
        sizes = sorted({row.size for row in rows})
        if sizes != [self.hidden_size]:
            found = sizes[0] if len(sizes) == 1 else sizes
            raise ConfigError(self._size_error(found, "the target's states have"))
        logits = np.stack(rows) @ self.weight + self.bias
        return (0.5 * (1.0 + np.tanh(0.5 * logits))).tolist()  # sigmoid, without overflow

    def score(self, question: str, solutions: Sequence[Sequence[str]]) -> list[float]:
        """RewardModel.score: the bound target reads each solution in the search's layout
        (prompt ids, earlier steps' ids, the last step's ids) in one batched forward, at
        the last step's token state_offset before its end (see read_at)."""
        target = self._bound()
        solutions = check_solutions(solutions)
        if not solutions:
            return []
        prompt = target.encode_prompt(question)
        prefixes, steps = [], []
        for solution in solutions:
            ids = [target.encode(step) for step in solution]
            prefixes.append(prompt + [i for step in ids[:-1] for i in step])
            steps.append(ids[-1])
        return self.rewards_at(prefixes, steps)

    def rewards_at(self, prefixes: Sequence[Sequence[int]], steps: Sequence[Sequence[int]]) -> list[float]:
        """The reward of each step (the target's token ids) after its prefix (the target's
        prompt ids and the earlier steps' ids), from ONE score_with_states call of the
        bound target, at the token read_at names. The search calls it with the ids it
        holds for candidates it has no state of (a draft step no target forward read, a
        step of state_offset tokens or fewer); score() with the texts encoded."""
        target = self._bound()
        pairs = [read_at(list(prefix), list(step), self.state_offset) for prefix, step in zip(prefixes, steps)]
        _, states = target.score_with_states([p for p, _ in pairs], [c for _, c in pairs],
                                             deadline=current_deadline())
        if len(states) != len(pairs):
            raise ValueError(f"target {target.name!r} returned {len(states)} states for {len(pairs)} steps")
        return self.rewards_of(states)

    def _bound(self) -> Any:
        if self.target is None:
            raise ConfigError(
                f"reward {self.name!r} is not attached to a target: it reads the target's hidden "
                "states; build the engine with SpecsEngine.from_pretrained, or pass "
                "reward=probe.attach(target, target_location)"
            )
        return self.target

    def _size_error(self, found: Any, whose: str) -> str:
        return (f"reward {self.name!r} expects hidden_size={self.hidden_size} states (base_model="
                f"{self.base_model!r}) but {whose} hidden_size={found}: use the probe with the "
                "target it was trained on")


def read_at(prefix: list[int], step: list[int], offset: int) -> tuple[list[int], list[int]]:
    """(prefix, continuation) whose continuation's last token is the one whose state the
    probe reads: the step less its last `offset` tokens, at least its first kept (as
    scripts/train_target_probe.py lays out its training examples); for an empty step,
    the last token of what precedes it. A causal model's state at a token does not
    depend on the tokens after it, so this is the state score_with_states(offset=offset)
    reads off the whole step, wherever the step has more than offset tokens."""
    if not step:
        return prefix[:-1], prefix[-1:]
    return prefix, step[: max(1, len(step) - offset)]


def _read_tensors(file: Path, hidden: int, sha256: Optional[str]) -> tuple[np.ndarray, float]:
    """weight [H] and bias of a probe's safetensors file, checked against its config."""
    if not file.is_file():
        raise ConfigError(f"{file.parent} holds no {HEAD_FILE}: the probe's weights are missing")
    if sha256 is not None:
        from specs_engine.file_hashes import hash_matches

        if not hash_matches(file, sha256):
            raise ConfigError(f"{file} does not match weights_sha256={sha256!r} in its config: "
                              "the weights were changed or damaged; retrain or reinstall the probe")
    try:
        from safetensors.numpy import load_file
    except ImportError:
        raise MissingExtraError("safetensors", "llama-cpp") from None
    tensors = load_file(str(file))
    missing = [name for name in ("weight", "bias") if name not in tensors]
    if missing:
        raise ConfigError(f"{file} lacks the tensor(s) {', '.join(missing)} (holds {sorted(tensors)}): "
                          "a probe needs 'weight' [1, hidden_size] and 'bias' [1]")
    weight, bias = tensors["weight"], tensors["bias"]
    if weight.shape not in ((1, hidden), (hidden,)) or bias.size != 1:
        raise ConfigError(f"{file}: weight {list(weight.shape)} and bias {list(bias.shape)} do not fit "
                          f"hidden_size={hidden} of its config: expected [1, {hidden}] and [1]")
    return weight.reshape(-1), float(bias.reshape(-1)[0])
