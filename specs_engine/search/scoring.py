"""Verification of proposed steps: target log-ratios and rewards, each bounded by the deadline.

The target scores in a pool thread while the reward scores (in a thread of its own when
the call has a deadline), so a draft round costs the slower of the two, not their sum.
A reward that reads the target's own states (a StateReward: the target probe) runs no
model: the target's scoring forward returns the states with the log-probs, and target
proposals carry theirs, so the reward is the head's arithmetic on them.
Every answer is checked before the search ranks on it (one finite reward per solution,
one log-prob per token sent), and a failure names the role, the model and the step. A
scoring cut by the deadline raises DeadlineExceededError; the run turns it into a stop
and salvages the round.
"""

from __future__ import annotations

import threading
from concurrent.futures import Future, TimeoutError as FutureTimeout, wait
from functools import partial
from typing import Any, Callable, Optional, Sequence

from specs_engine.call_context import in_call
from specs_engine.config import SpecsConfig
from specs_engine.errors import DeadlineExceededError, ModelCallError, RewardError
from specs_engine.models import RewardModel, StateReward
from specs_engine.result import Source
from specs_engine.search.accounting import Accounting
from specs_engine.search.beams import Beam, Proposal
from specs_engine.search.clock import RunClock
from specs_engine.search.reward_checks import checked_rewards
from specs_engine.search.roles import Roles
from specs_engine.verification import log_ratio


def model_call(role: str, name: str, step: int, fn: Callable, *args: Any) -> Any:
    """Runs a model call; a failure names the role, the model and the step."""
    try:
        return fn(*args)
    except DeadlineExceededError:
        raise  # the budget ran out while waiting: the round is salvaged, not failed
    except Exception as exc:  # re-raised with where it happened, never swallowed
        error = RewardError if role == "reward" else ModelCallError
        raise error(role, name, step, exc) from exc


def solutions_of(proposals: Sequence[Proposal]) -> list[list[str]]:
    """Each candidate as the last step of its beam: what the reward model scores."""
    return [p.parent.texts() + [p.candidate.text] for p in proposals]


def in_daemon_thread(fn: Callable[[], Any]) -> Future:
    """fn() running in a new daemon thread: a call that never returns holds that thread
    only, and does not keep the process from exiting."""
    future: Future = Future()

    def work() -> None:
        future.set_running_or_notify_cancel()
        try:
            future.set_result(fn())
        except BaseException as exc:  # handed to whoever waits on the future
            future.set_exception(exc)

    threading.Thread(target=work, name="specs-reward", daemon=True).start()
    return future


class Scoring:
    """Scores one call's proposals with its target and reward models."""

    def __init__(
        self,
        roles: Roles,
        question: str,
        config: SpecsConfig,
        clock: RunClock,
        accounts: Accounting,
        prefix: Callable[[Source, Beam], list[int]],
        pass_ids: bool,
    ):
        self.roles, self.question, self.config = roles, question, config
        self.clock, self.accounts, self.prefix, self.pass_ids = clock, accounts, prefix, pass_ids
        self.probe: Optional[StateReward] = roles.reward if isinstance(roles.reward, StateReward) else None
        """The reward, when it reads the target's states (then the search hands it them)."""

    def verify(self, proposals: Sequence[Proposal], step: int) -> tuple[list[float], list[float]]:
        """Target log-ratios and rewards of draft candidates, computed concurrently (or,
        with a probe on the target, both from the target's one scoring forward)."""
        if self.probe is not None:
            return self._verify_in_one_forward(proposals, step)
        now = self.clock.now
        started = now()
        ratios = self.roles.executor.submit(in_call(self._target_log_ratios), proposals, step)
        try:
            rewards = self.rewards(solutions_of(proposals), step, charge_busy=False)
            result = ratios.result(), rewards  # while the target scores
        finally:
            if not ratios.cancel():  # not started yet: dropped; else bounded by the target
                wait([ratios])  # a failed reward call must not leave the target writing stats
            self.accounts.busy_s += now() - started
        self.clock.record("verify", now() - started)
        return result

    def _verify_in_one_forward(
        self, proposals: Sequence[Proposal], step: int
    ) -> tuple[list[float], list[float]]:
        """The target's scoring forward also returns each candidate's state, which the
        probe turns into its reward: no reward model runs."""
        now = self.clock.now
        started = now()
        try:
            ratios, states = self._target_scores(proposals, step, with_states=True)
        finally:
            self.accounts.busy_s += now() - started
        rewards = self._probe_rewards(proposals, states, step)
        self.clock.record("verify", now() - started)
        return ratios, rewards

    def proposal_rewards(self, proposals: Sequence[Proposal], step: int) -> list[float]:
        """The reward of each candidate as the last step of its beam: with a probe on the
        target, read off the states target proposals carry; else the reward model's."""
        if self.probe is not None:
            return self._probe_rewards(proposals, [p.candidate.state for p in proposals], step)
        return self.rewards(solutions_of(proposals), step)

    def beam_rewards(self, beams: Sequence[Beam], step: int) -> list[float]:
        """The reward of each beam's last step, for beams that finished unscored (best-of-n
        samples, ranked once at the end): a probe on the target reads it over the search's
        own ids, the layout it was trained on and the rounds use (its score() would encode
        the question without the chat template); any other reward scores the texts."""
        if self.probe is None:
            return self.rewards([beam.texts() for beam in beams], step)
        last_steps = []
        for beam in beams:
            assert beam.parent is not None and beam.step is not None, "only a beam with a step is rewarded"
            last_steps.append((beam.parent, beam.token_ids, beam.step.text))
        return self._probe_forward(last_steps, step)

    def _probe_rewards(
        self, proposals: Sequence[Proposal], states: Sequence[Any], step: int
    ) -> list[float]:
        """The probe's reward of each candidate from its state; a candidate without one (a
        draft step no target forward read, or a step of state_offset tokens or fewer) gets
        the probe's own target forward over the beam's target ids (rewards_at: the prompt
        as the search encoded it, the tokens as written), charged as reward time."""
        assert self.probe is not None, "only a reward that reads states is handed them"
        have = [i for i, state in enumerate(states) if state is not None]
        rest = [i for i, state in enumerate(states) if state is None]
        rewards: dict[int, float] = {}
        if have:
            heads = self._probe_call(step, self.probe.rewards_of, [states[i] for i in have], timed=False)
            rewards.update(zip(have, heads))
        if rest:
            last_steps = [(proposals[i].parent, proposals[i].candidate.token_ids, proposals[i].candidate.text)
                          for i in rest]
            rewards.update(zip(rest, self._probe_forward(last_steps, step)))
        return [rewards[i] for i in range(len(proposals))]

    def _probe_forward(self, last_steps: Sequence[tuple[Beam, Sequence[int], str]], step: int) -> list[float]:
        """The probe's reward of each (parent beam, step ids, step text) from its own target
        forward over the search's ids (rewards_at: the prompt as the search encoded it, the
        tokens as written), charged as reward time."""
        assert self.probe is not None, "only a probe reads the target's forward"
        target = self.roles.model("target")
        prefixes = [self.prefix("target", parent) for parent, _, _ in last_steps]
        steps = [self._ids_for(target, ids, text) for _, ids, text in last_steps]
        return self._probe_call(step, self.probe.rewards_at, prefixes, steps)

    def _probe_call(self, step: int, method: Callable[..., Sequence[float]], *args: Sequence[Any],
                    timed: bool = True) -> list[float]:
        """One call of the probe (its head on states, or its own target forward), one
        reward per item of the last argument: its time is the reward's. Only a forward
        (timed) sets the reward's cost the clock reserves before the next step it scores:
        the head alone takes microseconds and would hide what a forward costs."""
        assert self.probe is not None, "only a reward that reads states is called so"
        started = self.clock.now()
        try:
            values = model_call("reward", self.probe.name, step, method, *args)
        except DeadlineExceededError:
            self.accounts.stats.reward_cut = True
            raise
        finally:
            elapsed = self.clock.now() - started
            self.accounts.stats.reward_s += elapsed
            self.accounts.busy_s += elapsed
        if timed:
            self.clock.record("reward", elapsed)
        return self._checked(values, len(args[-1]), self.probe.name, step)

    def rewards(self, solutions: list[list[str]], step: int, charge_busy: bool = True) -> list[float]:
        """The reward of each solution, checked to be finite (and >= 0 as vote weights)."""
        reward = self.roles.reward
        assert reward is not None, "engine validated that a reward model exists"
        stats, now = self.accounts.stats, self.clock.now
        started = now()
        try:
            values = self._reward_by_deadline(reward, solutions, step)
        except DeadlineExceededError:
            stats.reward_cut = True
            raise
        finally:
            stats.reward_s += now() - started
        elapsed = now() - started
        self.clock.record("reward", elapsed)
        if charge_busy:
            self.accounts.busy_s += elapsed
        return self._checked(values, len(solutions), reward.name, step)

    def _checked(self, values: Sequence[Any], expected: int, name: str, step: int) -> list[float]:
        try:
            return checked_rewards(values, expected, self.config.final_selection == "weighted_vote")
        except ValueError as exc:
            raise RewardError("reward", name, step, exc) from None

    def _reward_by_deadline(self, reward: RewardModel, solutions: list[list[str]], step: int) -> Sequence[float]:
        """The reward's answer, waited for no longer than the time left. The reward runs
        in a thread of its own (a Python callable cannot be interrupted, but the search can
        stop waiting for it; a hung one keeps only its own daemon thread, not a worker of
        the pool the target scores in); remote and in-process rewards also stop
        themselves at the deadline, which they read from the call's context."""
        call = partial(model_call, "reward", reward.name, step, reward.score, self.question, solutions)
        if self.clock.deadline is None:
            return call()
        try:
            return in_daemon_thread(in_call(call)).result(timeout=max(self.clock.time_left(), 0.0))
        except FutureTimeout:
            raise DeadlineExceededError(f"reward model {reward.name!r} was still scoring at the deadline") from None

    def _target_ids(self, target: Any, proposal: Proposal) -> list[int]:
        return self._ids_for(target, proposal.candidate.token_ids, proposal.candidate.text)

    def _ids_for(self, target: Any, token_ids: Sequence[int], text: str) -> list[int]:
        """A step's tokens as the target reads them: its own ids when the tokenizers
        match, else its text encoded by the target."""
        return list(token_ids) if self.pass_ids else target.encode(text)

    def _target_log_ratios(self, proposals: Sequence[Proposal], step: int) -> list[float]:
        return self._target_scores(proposals, step, with_states=False)[0]

    def _target_scores(
        self, proposals: Sequence[Proposal], step: int, with_states: bool
    ) -> tuple[list[float], Optional[list[Any]]]:
        """The target's log-ratio of each candidate, from one batched prefill, and with
        with_states the target's final hidden state where the probe reads it (state_offset
        tokens before each candidate's last token; None for a shorter candidate)."""
        target = self.roles.model("target")
        by_parent: dict[int, list[int]] = {}  # candidates of one beam share its prefix
        for p in proposals:
            if id(p.parent) not in by_parent:
                by_parent[id(p.parent)] = self.prefix("target", p.parent)
        prefixes = [by_parent[id(p.parent)] for p in proposals]
        continuations = [self._target_ids(target, p) for p in proposals]
        scorer = target.score
        if with_states:
            assert self.probe is not None, "states are asked for a probe"
            scorer = partial(target.score_with_states, offset=self.probe.state_offset)
        stats, started = self.accounts.stats, self.clock.now()
        try:
            answer = model_call(
                "target", target.name, step, partial(scorer, deadline=self.clock.deadline),
                prefixes, continuations,
            )
        finally:  # a target that ran out of time still spent it
            stats.target_s += self.clock.now() - started
        scored, states = answer if with_states else (answer, None)
        stats.target_scored_tokens += sum(map(len, continuations))
        if states is not None and len(states) != len(proposals):
            raise ModelCallError("target", target.name, step, ValueError(
                f"returned {len(states)} hidden states for {len(proposals)} candidates"))
        ratios = []
        for p, cont, lps in zip(proposals, continuations, scored):
            if len(lps) != len(cont):
                raise ModelCallError(
                    "target", target.name, step,
                    ValueError(f"scored {len(lps)} tokens of a {len(cont)}-token step"),
                )
            ratios.append(log_ratio(lps, p.candidate.token_logprobs, self.config.log_ratio))
        return ratios, states
