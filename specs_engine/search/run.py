"""The state of one search call and the moves every strategy is made of.

A strategy module is a short loop over these moves: propose candidates, verify them
(target log-probs and rewards, concurrently), accept some as new beams, advance. The run
keeps the clock, the budget, the stats and the stream, so that a strategy reads top to
bottom and never touches a backend or a timer itself.
"""

from __future__ import annotations

import math
import random
import threading
import time
from concurrent.futures import Executor, TimeoutError as FutureTimeout, wait
from contextlib import contextmanager
from functools import partial
from dataclasses import dataclass, replace
from typing import Callable, Iterator, Optional, Sequence

from specs_engine.answers import extract_answer, has_final_answer, weighted_vote
from specs_engine.call_context import CallContext, in_call
from specs_engine.config import Budget, SpecsConfig
from specs_engine.errors import DeadlineExceededError, ModelCallError, RewardError
from specs_engine.models import Candidate, LanguageModel, Prompt, ProposalParams, RewardModel
from specs_engine.result import Event, FinalEvent, SearchResult, Source, Stats, Step, StepEvent
from specs_engine.search.beams import Beam, common_chain, rank_key
from specs_engine.search.reward_checks import checked_rewards
from specs_engine.search.structure import screen
from specs_engine.verification import log_ratio

Clock = Callable[[], float]
BUDGET_STOPS = ("latency", "max_steps", "max_new_tokens")


@dataclass(frozen=True)
class Roles:
    """The models of one engine, and the pool that runs target and reward side by side."""

    draft: Optional[LanguageModel]
    target: Optional[LanguageModel]
    reward: Optional[RewardModel]
    executor: Executor

    def model(self, role: Source) -> LanguageModel:
        model = self.draft if role == "draft" else self.target
        assert model is not None, f"engine validated that a {role} model exists"
        return model


@dataclass(frozen=True)
class Proposal:
    """A candidate step and the beam it extends."""

    parent: Beam
    candidate: Candidate
    source: Source


def question_of(prompt: Prompt) -> str:
    """The text a reward model sees as the question: the prompt, or the last user turn."""
    if isinstance(prompt, str):
        return prompt
    users = [m["content"] for m in prompt if m.get("role") == "user"]
    return users[-1] if users else prompt[-1]["content"]


class SearchRun:
    """One call's clock, budget, beams, stats and stream."""

    def __init__(
        self,
        roles: Roles,
        prompt_ids: dict[str, list[int]],
        question: str,
        config: SpecsConfig,
        budget: Budget,
        *,
        pass_ids: bool,
        stop: Sequence[str] = (),
        clock: Clock = time.monotonic,
        on_event: Optional[Callable[[Event], None]] = None,
        slots: Optional[int] = None,
        cancel: Optional[threading.Event] = None,
        start: Optional[float] = None,
        call: Optional[CallContext] = None,
    ):
        self.roles, self.prompt_ids, self.question = roles, prompt_ids, question
        self.config, self.budget, self.pass_ids = config, budget, pass_ids
        self.stop, self.clock, self.on_event = tuple(stop), clock, on_event
        self.cancel = cancel or threading.Event()
        self.call = call or CallContext()
        self.start = clock() if start is None else start
        """When the call entered the engine: its budget covers encoding and queueing too."""
        self.deadline = self.start + budget.latency_s if budget.latency_s else None
        self.rng = random.Random(config.seed)
        self.slots = slots or config.num_beams
        self.root = Beam()
        self.beams: list[Beam] = [self.root]
        self.completed: list[Beam] = []
        self.step_index = 0
        self.stop_reason: Optional[str] = None
        self.stats = Stats(prompt_tokens=len(next(iter(prompt_ids.values()))))
        self._busy_s = 0.0
        self._streamed = 0
        self._round_cost: dict[str, float] = {}
        self._considered = 0

    # ---- the budget -------------------------------------------------------------

    def time_left(self) -> float:
        return math.inf if self.deadline is None else self.deadline - self.clock()

    def should_stop(self) -> bool:
        """True once the search must end: out of beams, time or steps. A search whose
        beams all completed has finished, whatever the clock or step count says."""
        if not self.beams:
            return True
        if self.stop_reason is None:
            if self.cancel.is_set():
                self.stop_reason = "cancelled"
            elif self.time_left() <= 0:
                self.stop_reason = "latency"
            elif self.step_index >= self.budget.max_steps:
                self.stop_reason = "max_steps"
        return self.stop_reason is not None

    def can_afford(self, kind: str) -> bool:
        """Whether a round of this kind, at its measured cost so far, ends before the deadline."""
        return self._round_cost.get(kind, 0.0) < self.time_left()

    def out_of_time(self) -> None:
        self.stop_reason = "latency"

    def timed_out(self) -> bool:
        """True once the deadline has passed, e.g. while a proposal was being decoded."""
        if self.time_left() <= 0:
            self.out_of_time()
        return self.stop_reason == "latency"

    def salvage(self, proposals: Sequence[Proposal]) -> list[Beam]:
        """Out of time mid-round: verifying would overrun the deadline, so keep the
        candidate its own model found likeliest (per token) and let the search stop."""
        written = [p for p in proposals if p.candidate.token_ids]
        if not written:
            return []
        mean_logprob = lambda p: sum(p.candidate.token_logprobs) / len(p.candidate.token_ids)  # noqa: E731
        return [self.accept(max(written, key=mean_logprob), reward=None)]

    @contextmanager
    def round(self, kind: str) -> Iterator[None]:
        """Times a round so can_afford can predict the next one (the slowest recent one)."""
        started = self.clock()
        yield
        cost = self.clock() - started
        self._round_cost[kind] = max(cost, 0.8 * self._round_cost.get(kind, cost))

    # ---- the moves --------------------------------------------------------------

    def prefix(self, role: Source, beam: Beam) -> list[int]:
        """The tokens a model conditions on: its prompt ids plus the beam's steps."""
        if self.pass_ids:
            return self.prompt_ids[role] + beam.ids()
        return self.prompt_ids[role] + self.roles.model(role).encode(beam.text())

    def propose(
        self, role: Source, beams: Sequence[Beam], per_beam: int, greedy: bool = False,
        may_defer: bool = False,
    ) -> list[Proposal]:
        """per_beam candidate next steps for each beam, from one batched model call per
        token limit (usually one: beams differ in room only near max_new_tokens), screened
        by the structural check (may_defer: the round can do without any; see structure)."""
        model = self.roles.model(role)
        prefixes = [self.prefix(role, beam) for beam in beams]
        limits = [max(self._token_room(beam, len(p), model), 1) for beam, p in zip(beams, prefixes)]
        params = ProposalParams(
            delimiter=self.config.delimiter,
            max_new_tokens=max(limits),
            temperature=self.config.temperature or 1.0,  # 0: greedy (log-probs at temperature 1)
            top_p=self.config.top_p,
            greedy=greedy or self.config.temperature == 0,
            seed=self.rng.getrandbits(31),
            stop=self.stop,
            deadline=None if self.deadline is None else self.deadline - self._verify_cost(),
        )
        started = self.clock()
        per_prefix: list[Sequence[Candidate]] = [()] * len(beams)
        for k, limit in enumerate(sorted(set(limits), reverse=True)):
            members = [i for i, room in enumerate(limits) if room == limit]
            group = replace(params, max_new_tokens=limit, seed=params.seed + k)
            try:
                answers = self._call(role, model.name, model.propose, [prefixes[i] for i in members], per_beam, group)
            except DeadlineExceededError:  # queued behind other calls until the deadline
                self.out_of_time()
                break
            for i, candidates in zip(members, answers):
                per_prefix[i] = candidates
        self._charge(role, self.clock() - started)
        proposals = [
            Proposal(beam, candidate, role)
            for beam, candidates in zip(beams, per_prefix)
            for candidate in candidates
        ]
        tokens = sum(len(p.candidate.token_ids) for p in proposals)
        if role == "draft":
            self.stats.draft_tokens += tokens
        else:
            self.stats.target_tokens += tokens
        self._considered += len(proposals)
        kept = screen(self.config.structure, proposals, may_defer)
        self.stats.candidates_rejected_structure += len(proposals) - len(kept)
        return kept

    def verify(self, proposals: Sequence[Proposal]) -> Optional[tuple[list[float], list[float]]]:
        """Target log-ratios and rewards of draft candidates, computed concurrently.
        None when the target could not answer before the deadline."""
        started = self.clock()
        ratios = self.roles.executor.submit(in_call(self._target_log_ratios), proposals)
        try:
            rewards = self.rewards(proposals, charge_busy=False)  # while the target scores
            if rewards is None:
                return None
            result = ratios.result(), rewards
        except DeadlineExceededError:
            self.out_of_time()
            return None
        finally:
            if not ratios.cancel():  # not started yet: dropped; else bounded by the target
                wait([ratios])  # a failed reward call must not leave the target writing stats
            self._busy_s += self.clock() - started
        self._round_cost["verify"] = self.clock() - started
        return result

    def rewards(self, proposals: Sequence[Proposal], charge_busy: bool = True) -> Optional[list[float]]:
        """Reward of each candidate as the last step of its beam, checked to be finite.
        None when the deadline cut the reward: the caller salvages the round."""
        solutions = [p.parent.texts() + [p.candidate.text] for p in proposals]
        return self._score_solutions(solutions, charge_busy)

    def _score_solutions(self, solutions: list[list[str]], charge_busy: bool = True) -> Optional[list[float]]:
        reward = self.roles.reward
        assert reward is not None, "engine validated that a reward model exists"
        started = self.clock()
        try:
            values = self._reward_by_deadline(reward, solutions)
        except DeadlineExceededError:
            self.stats.reward_cut = True
            self.out_of_time()
            return None
        finally:
            self.stats.reward_s += self.clock() - started
        elapsed = self.clock() - started
        self._round_cost["reward"] = elapsed
        if charge_busy:
            self._busy_s += elapsed
        try:
            return checked_rewards(values, len(solutions), self.config.final_selection == "weighted_vote")
        except ValueError as exc:
            raise RewardError("reward", reward.name, self.step_index + 1, exc) from None

    def _reward_by_deadline(self, reward: RewardModel, solutions: list[list[str]]) -> Sequence[float]:
        """The reward's answer, waited for no longer than the time left. The reward runs
        in a pool thread (a Python callable cannot be interrupted, but the search can stop
        waiting for it); remote and in-process rewards also stop themselves at the
        deadline, which they read from the call's context."""
        call = partial(self._call, "reward", reward.name, reward.score, self.question, solutions)
        if self.deadline is None:
            return call()
        future = self.roles.executor.submit(in_call(call))
        try:
            return future.result(timeout=max(self.time_left(), 0.0))
        except FutureTimeout:
            future.cancel()
            raise DeadlineExceededError(f"reward model {reward.name!r} was still scoring at the deadline") from None

    def accept(
        self,
        proposal: Proposal,
        reward: Optional[float],
        ratio: Optional[float] = None,
        score: Optional[float] = None,
    ) -> Beam:
        """A new beam: the proposal's parent extended by its candidate step."""
        candidate, parent = proposal.candidate, proposal.parent
        step = Step(
            text=candidate.text,
            source=proposal.source,
            reward=reward,
            log_ratio=ratio,
            score=score,
            tokens=len(candidate.token_ids),
            elapsed_s=self.clock() - self.start,
        )
        beam = parent.child(step, candidate.token_ids)
        beam.end = self._end_of(beam, candidate)
        return beam

    def advance(self, children: Sequence[Beam]) -> list[Beam]:
        """Moves completed children out of the live set and streams what is settled.
        No children (a round cut by the deadline before writing anything) keeps the beams."""
        if not children:
            return self.beams
        self.step_index += 1
        self.completed += [beam for beam in children if beam.finished]
        self.beams = [beam for beam in children if not beam.finished]
        self._stream_settled()
        return self.beams

    def open_slots(self) -> int:
        return max(self.slots - len(self.completed), 0)

    def per_beam(self, beams: Sequence[Beam]) -> int:
        """Candidates per beam so that a step proposes about n in all."""
        return max(1, self.config.n // max(len(beams), 1))

    # ---- the result -------------------------------------------------------------

    def finish(self, method: str) -> SearchResult:
        """Ranks completed beams (live ones if none completed) on one score."""
        pool = self.completed or self.beams or [self.root]
        if self.stop_reason != "latency":  # past the deadline, scoring would only overrun it
            self.score_unrewarded(pool)
        winner = self._winner(pool)
        ended = winner.end in ("eos", "stop", "answer")
        stop = self.stop_reason or ("finished" if ended else winner.end or "finished")
        text = winner.text()
        result = SearchResult(
            text=text,
            answer=extract_answer(text),
            steps=winner.steps(),
            stats=self._final_stats(winner),
            method=method,
            finished=ended,
            budget_exhausted=stop in BUDGET_STOPS,
            stop_reason=stop,
            candidates_considered=self._considered,
        )
        streamed = "".join(node.step.text for node in winner.chain()[: self._streamed])
        self._emit(FinalEvent(result=result, delta=text[len(streamed) :]))
        return result

    # ---- helpers ----------------------------------------------------------------

    def _call(self, role: str, name: str, fn: Callable, *args):
        """Runs a model call; a failure names the role, the model and the step."""
        try:
            return fn(*args)
        except DeadlineExceededError:
            raise  # the budget ran out while waiting: the round is salvaged, not failed
        except Exception as exc:  # re-raised with where it happened, never swallowed
            error = RewardError if role == "reward" else ModelCallError
            raise error(role, name, self.step_index + 1, exc) from exc

    def _charge(self, role: Source, seconds: float) -> None:
        if role == "draft":
            self.stats.draft_s += seconds
        else:
            self.stats.target_s += seconds
        self._busy_s += seconds

    def _target_log_ratios(self, proposals: Sequence[Proposal]) -> list[float]:
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
        started = self.clock()
        try:
            scored = self._call(
                "target", target.name, partial(target.score, deadline=self.deadline), prefixes, continuations
            )
        finally:  # a target that ran out of time still spent it
            self.stats.target_s += self.clock() - started
        self.stats.target_scored_tokens += sum(map(len, continuations))
        ratios = []
        for p, cont, lps in zip(proposals, continuations, scored):
            if len(lps) != len(cont):
                raise ModelCallError(
                    "target", target.name, self.step_index + 1,
                    ValueError(f"scored {len(lps)} tokens of a {len(cont)}-token step"),
                )
            ratios.append(log_ratio(lps, p.candidate.token_logprobs, self.config.log_ratio))
        return ratios

    def _token_room(self, beam: Beam, prefix_len: int, model: LanguageModel) -> int:
        return min(
            self.config.max_step_tokens,
            self.budget.max_new_tokens - beam.total_tokens,
            model.context_window - prefix_len - 1,
        )

    def _verify_cost(self) -> float:
        """Time to keep free after decoding, for the scoring that follows it."""
        return max(self._round_cost.get("verify", 0.0), self._round_cost.get("reward", 0.0))

    def _end_of(self, beam: Beam, candidate: Candidate) -> Optional[str]:
        """Why a beam is complete, or None while it goes on."""
        if candidate.ends_solution:
            return candidate.finish_reason
        if has_final_answer(beam.text()):
            return "answer"
        if beam.total_tokens >= self.budget.max_new_tokens:
            return "max_new_tokens"
        for user, prompt in self.prompt_ids.items():  # every model that must read the beam next
            if len(prompt) + beam.total_tokens + 1 >= self.roles.model(user).context_window:
                return "context"
        return None

    def _stream_settled(self) -> None:
        settled = common_chain(self.completed + self.beams)
        for node in settled[self._streamed :]:
            self._streamed += 1
            self._emit(StepEvent(index=self._streamed, step=node.step))

    def _emit(self, event: Event) -> None:
        if self.on_event is not None:
            self.on_event(event)

    def score_unrewarded(self, pool: Sequence[Beam]) -> None:
        """Beams completed without a reward (best_of_n) are scored once, all together."""
        missing = [b for b in pool if b.step is not None and b.step.reward is None]
        if self.roles.reward is None or len(pool) < 2 or not missing:
            return
        values = self._score_solutions([b.texts() for b in missing])
        for beam, value in zip(missing, values or ()):
            beam.step = replace(beam.step, reward=value)

    def _winner(self, pool: Sequence[Beam]) -> Beam:
        if self.config.final_selection == "weighted_vote":
            answers = [(extract_answer(b.text()), b.reward if b.reward is not None else 1.0) for b in pool]
            chosen = weighted_vote(answers)
            if chosen is not None:
                pool = [b for b, (a, _) in zip(pool, answers) if a == chosen]
        return max(pool, key=rank_key)

    def _final_stats(self, winner: Beam) -> Stats:
        stats = self.stats
        steps = winner.steps()
        stats.steps_from_draft = sum(s.source == "draft" for s in steps)
        stats.steps_from_target = sum(s.source == "target" for s in steps)
        stats.completion_tokens = winner.total_tokens
        stats.wall_s = self.clock() - self.start
        stats.queue_s, stats.load_s = min(self.call.queued_s, stats.wall_s), self.call.load_s
        stats.overhead_s = max(stats.wall_s - self._busy_s, 0.0)
        return stats

