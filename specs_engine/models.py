"""The roles the search talks to. Strategies use only these; backends implement them.

A LanguageModel proposes candidate steps (with the log-probs of the sampled tokens) and
scores given continuations in one prefill. A RewardModel scores partial solutions step
by step. Everything crosses this boundary as token ids, so a draft's tokens can reach a
target that shares its tokenizer without being re-tokenised.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Mapping, Optional, Protocol, Sequence, Union, runtime_checkable

from specs_engine.errors import ConfigError

Prompt = Union[str, Sequence[Mapping[str, str]]]
"""A plain string, or chat messages ({"role": ..., "content": ...}) for a chat template."""

FinishReason = Literal["delimiter", "eos", "length", "stop", "deadline"]


@dataclass(frozen=True)
class ProposalParams:
    """How to sample one round of candidate steps."""

    delimiter: str
    """Stop a candidate once its text contains this (the step delimiter)."""
    max_new_tokens: int
    """Most tokens a candidate may take."""
    temperature: float = 1.0
    top_p: float = 1.0
    greedy: bool = False
    """Take the most likely token instead of sampling (temperature is then ignored)."""
    seed: int | None = None
    """Seed for this round's sampling; the search derives one per round from its own."""
    stop: tuple[str, ...] = ()
    """Extra stop strings (e.g. a LangChain caller's `stop`); the candidate ends before them."""
    deadline: float | None = None
    """time.monotonic() value after which decoding stops and returns what it has."""
    with_states: bool = False
    """Also return each candidate's final hidden state (Candidate.state), `state_offset`
    tokens before its last, for a reward that reads the proposer's own forward (a
    StateScorer backend only)."""
    state_offset: int = 0
    """With with_states: read the state this many tokens before a candidate's last token
    (0: at the last token); a candidate of state_offset tokens or fewer gets None."""


@dataclass(frozen=True)
class Candidate:
    """One proposed step: its tokens, its text and how the proposer scored it."""

    token_ids: tuple[int, ...]
    text: str
    token_logprobs: tuple[float, ...]
    """Log-probs of the sampled tokens under the distribution they were sampled from."""
    finish_reason: FinishReason
    state: Optional[Any] = field(default=None, compare=False, repr=False)
    """float32 [hidden]: the model's final (post-norm) hidden state at the step's token
    ProposalParams.state_offset before its last, when with_states asked for it; None
    otherwise (or when the step is too short to have that token)."""

    @property
    def ends_solution(self) -> bool:
        """True when the model ended the whole solution, not only the step."""
        return self.finish_reason in ("eos", "stop")


@runtime_checkable
class LanguageModel(Protocol):
    """A draft or target model."""

    name: str
    context_window: int
    """Most tokens (prompt plus generation) the model accepts."""
    tokenizer_fingerprint: str
    """Equal fingerprints mean token ids can pass between two models unchanged."""

    def encode_prompt(self, prompt: Prompt) -> list[int]:
        """Token ids of a prompt (chat messages go through the model's chat template)."""
        ...

    def encode(self, text: str) -> list[int]:
        """Token ids of a continuation text, with no special tokens added."""
        ...

    def propose(
        self, prefixes: Sequence[Sequence[int]], num_candidates: int, params: ProposalParams
    ) -> list[list[Candidate]]:
        """num_candidates next steps for each prefix, in one batched call."""
        ...

    def score(
        self,
        prefixes: Sequence[Sequence[int]],
        continuations: Sequence[Sequence[int]],
        *,
        deadline: float | None = None,
    ) -> list[list[float]]:
        """Per-token log p(continuation | prefix) for each pair, in one batched prefill.
        A backend that can wait (a remote server) raises DeadlineExceededError once the
        time.monotonic() deadline passes; an in-process prefill may ignore it."""
        ...


@runtime_checkable
class RewardModel(Protocol):
    """A process reward model: how good is the last step of each partial solution."""

    name: str

    def score(self, question: str, solutions: Sequence[Sequence[str]]) -> list[float]:
        """Reward of the last step of each solution (a solution is its list of steps)."""
        ...


@runtime_checkable
class StateReward(Protocol):
    """A reward read off the target's hidden states (rewards.target_probe.TargetProbe):
    where the search has the target's states (its scoring forward, or target proposals
    made with_states) it asks rewards_of instead of score, and runs no reward model."""

    name: str
    state_offset: int
    """Which state it reads: this many tokens before a step's last token (0: the last)."""

    def rewards_of(self, states: Sequence[Any]) -> list[float]:
        """The reward of each step from the target's final hidden state, state_offset
        tokens before the step's last token."""
        ...

    def rewards_at(self, prefixes: Sequence[Sequence[int]], steps: Sequence[Sequence[int]]) -> list[float]:
        """The reward of each step (target token ids) after its prefix (the target's
        prompt ids and the earlier steps' ids), from a target forward of its own: for the
        steps the search holds no state of."""
        ...


@runtime_checkable
class StateScorer(Protocol):
    """A language model whose scoring forward also yields hidden states: what a probe on
    the target's forward (rewards.target_probe) reads, so the reward costs no extra pass.
    The in-process backends also say the states' size (`hidden_size`), which a probe
    checks when it is attached."""

    def score_with_states(
        self,
        prefixes: Sequence[Sequence[int]],
        continuations: Sequence[Sequence[int]],
        *,
        deadline: float | None = None,
        offset: int = 0,
    ) -> tuple[list[list[float]], list[Any]]:
        """score()'s per-token log-probs, plus for each pair the final (post-norm) hidden
        state at continuation index len(continuation) - 1 - offset (float32 numpy [hidden];
        None when the continuation has offset tokens or fewer), from the same forward."""
        ...


STATE_BACKENDS = ("llama.cpp", "transformers")
"""The backends whose language models are StateScorers."""
NO_STATE_BACKENDS = ("vllm", "openai")
"""The backends whose completions return tokens and log-probs only: the preset gives them a
reward that needs no hidden state, and a target probe is refused on them."""


def check_state_offset(offset: Any, name: str) -> int:
    """offset itself when it is a non-negative int (which state a probe reads); else a
    clear ConfigError naming the argument."""
    if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
        raise ConfigError(f"{name}={offset!r} is not allowed: give a non-negative integer (the tokens "
                          "between the state read and the step's last token; 0: the last token)")
    return offset
