"""Verification of proposed steps: target log-ratios and rewards, each bounded by the deadline.

The target scores in a pool thread while the reward scores (in a thread of its own when
the call has a deadline), so a draft round costs the slower of the two, not their sum.
Every answer is checked before the search ranks on it (one finite reward per solution,
one log-prob per token sent), and a failure names the role, the model and the step. A
scoring cut by the deadline raises DeadlineExceededError; the run turns it into a stop
and salvages the round.
"""

from __future__ import annotations

import threading
from concurrent.futures import Future, TimeoutError as FutureTimeout, wait
from functools import partial
from typing import Any, Callable, Sequence

from specs_engine.call_context import in_call
from specs_engine.config import SpecsConfig
from specs_engine.errors import DeadlineExceededError, ModelCallError, RewardError
from specs_engine.models import RewardModel
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

    def verify(self, proposals: Sequence[Proposal], step: int) -> tuple[list[float], list[float]]:
        """Target log-ratios and rewards of draft candidates, computed concurrently."""
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
        try:
            return checked_rewards(values, len(solutions), self.config.final_selection == "weighted_vote")
        except ValueError as exc:
            raise RewardError("reward", reward.name, step, exc) from None

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

    def _target_log_ratios(self, proposals: Sequence[Proposal], step: int) -> list[float]:
        target = self.roles.model("target")
        by_parent: dict[int, list[int]] = {}  # candidates of one beam share its prefix
        for p in proposals:
            if id(p.parent) not in by_parent:
                by_parent[id(p.parent)] = self.prefix("target", p.parent)
        prefixes = [by_parent[id(p.parent)] for p in proposals]
        continuations = [
            list(p.candidate.token_ids) if self.pass_ids else target.encode(p.candidate.text)
            for p in proposals
        ]
        stats, started = self.accounts.stats, self.clock.now()
        try:
            scored = model_call(
                "target", target.name, step, partial(target.score, deadline=self.clock.deadline),
                prefixes, continuations,
            )
        finally:  # a target that ran out of time still spent it
            stats.target_s += self.clock.now() - started
        stats.target_scored_tokens += sum(map(len, continuations))
        ratios = []
        for p, cont, lps in zip(proposals, continuations, scored):
            if len(lps) != len(cont):
                raise ModelCallError(
                    "target", target.name, step,
                    ValueError(f"scored {len(lps)} tokens of a {len(cont)}-token step"),
                )
            ratios.append(log_ratio(lps, p.candidate.token_logprobs, self.config.log_ratio))
        return ratios
