"""The state of one search call and the moves every strategy is made of.

A strategy module is a short loop over these moves: propose candidates, verify them
(target log-probs and rewards, concurrently), accept some as new beams, advance. The run
holds the beams, the stop decision and the stream, and hands the rest to its parts: the
clock (clock.py: deadline, round costs), the accounting (accounting.py: the stats) and
the scoring (scoring.py: target and reward, checked), so that a strategy reads top to
bottom and never touches a backend or a timer itself.
"""

from __future__ import annotations

import random
import threading
from dataclasses import replace
from typing import Callable, ContextManager, Optional, Sequence

from specs_engine.answers import extract_answer, has_final_answer, weighted_vote
from specs_engine.call_context import CallContext
from specs_engine.config import Budget, SpecsConfig
from specs_engine.errors import DeadlineExceededError
from specs_engine.models import Candidate, LanguageModel, Prompt, ProposalParams
from specs_engine.result import Event, FinalEvent, SearchResult, Source, Step, StepEvent
from specs_engine.search.accounting import Accounting
from specs_engine.search.beams import Beam, Proposal, common_chain, rank_key
from specs_engine.search.clock import RunClock
from specs_engine.search.roles import Roles
from specs_engine.search.scoring import Scoring, model_call
from specs_engine.search.structure import screen

BUDGET_STOPS = ("latency", "max_steps", "max_new_tokens")


def question_of(prompt: Prompt) -> str:
    """The text a reward model sees as the question: the prompt, or the last user turn."""
    if isinstance(prompt, str):
        return prompt
    users = [m["content"] for m in prompt if m.get("role") == "user"]
    return users[-1] if users else prompt[-1]["content"]


class SearchRun:
    """One call's beams, budget and stream, with its clock, accounting and scoring."""

    def __init__(
        self,
        roles: Roles,
        prompt_ids: dict[str, list[int]],
        question: str,
        config: SpecsConfig,
        budget: Budget,
        *,
        pass_ids: bool,
        timer: RunClock,
        stop: Sequence[str] = (),
        on_event: Optional[Callable[[Event], None]] = None,
        slots: Optional[int] = None,
        cancel: Optional[threading.Event] = None,
        call: Optional[CallContext] = None,
    ):
        """timer: the call's clock and its one deadline, made by the engine at entry from
        the budget's latency_s; the run reads the rest of the budget (max_steps,
        max_new_tokens) itself."""
        self.roles, self.prompt_ids, self.question = roles, prompt_ids, question
        self.config, self.budget, self.pass_ids = config, budget, pass_ids
        self.timer = timer
        self.stop, self.clock, self.on_event = tuple(stop), self.timer.now, on_event
        self.cancel = cancel or threading.Event()
        self.call = call or CallContext()
        self.rng = random.Random(config.seed)
        self.slots = slots or config.num_beams
        self.root = Beam()
        self.beams: list[Beam] = [self.root]
        self.completed: list[Beam] = []
        self.step_index = 0
        self.stop_reason: Optional[str] = None
        self.accounts = Accounting(prompt_tokens=len(next(iter(prompt_ids.values()))))
        self.stats = self.accounts.stats
        self.scoring = Scoring(roles, question, config, self.timer, self.accounts, self.prefix, pass_ids)
        self._streamed = 0

    # ---- the budget -------------------------------------------------------------

    def time_left(self) -> float:
        return self.timer.time_left()

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
        return self.timer.can_afford(kind)

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

    def round(self, kind: str) -> ContextManager[None]:
        """Times a round so can_afford can predict the next one (the slowest recent one)."""
        return self.timer.round(kind)

    # ---- the moves --------------------------------------------------------------

    def prefix(self, role: Source, beam: Beam) -> list[int]:
        """The tokens a model conditions on: its prompt ids plus the beam's steps."""
        if self.pass_ids:
            return self.prompt_ids[role] + beam.ids()
        return self.prompt_ids[role] + self.roles.model(role).encode(beam.text())

    def propose(
        self, role: Source, beams: Sequence[Beam], per_beam: int, greedy: bool = False,
        may_defer: bool = False, scored_by: str = "reward",
    ) -> list[Proposal]:
        """per_beam candidate next steps for each beam, from one batched model call per
        token limit (usually one: beams differ in room only near max_new_tokens), screened
        by the structural check (may_defer: the round can do without any; see structure).
        Decoding ends in time for the scoring that follows (scored_by, see the clock); a
        decode cut at that point means the time is spent: the run is out of time, so the
        caller salvages the round and the search stops, instead of scoring fragments past
        the deadline or taking more steps of a token each."""
        model = self.roles.model(role)
        prefixes = [self.prefix(role, beam) for beam in beams]
        limits = [max(self._token_room(beam, len(p), model), 1) for beam, p in zip(beams, prefixes)]
        probe = self.scoring.probe if role == "target" else None  # it reads the target's own decode
        params = ProposalParams(
            delimiter=self.config.delimiter,
            max_new_tokens=max(limits),
            temperature=self.config.temperature or 1.0,  # 0: greedy (log-probs at temperature 1)
            top_p=self.config.top_p,
            greedy=greedy or self.config.temperature == 0,
            seed=self.rng.getrandbits(31),
            stop=self.stop,
            deadline=self.timer.proposal_deadline(scored_by),
            with_states=probe is not None,
            state_offset=probe.state_offset if probe is not None else 0,
        )
        started = self.clock()
        per_prefix: list[Sequence[Candidate]] = [()] * len(beams)
        for k, limit in enumerate(sorted(set(limits), reverse=True)):
            members = [i for i, room in enumerate(limits) if room == limit]
            group = replace(params, max_new_tokens=limit, seed=params.seed + k)
            try:
                answers = model_call(role, model.name, self.step_index + 1, model.propose,
                                     [prefixes[i] for i in members], per_beam, group)
            except DeadlineExceededError:  # queued behind other calls until the deadline
                self.out_of_time()
                break
            for i, candidates in zip(members, answers):
                per_prefix[i] = candidates
        if any(c.finish_reason == "deadline" for candidates in per_prefix for c in candidates):
            self.out_of_time()
        proposals = [
            Proposal(beam, candidate, role)
            for beam, candidates in zip(beams, per_prefix)
            for candidate in candidates
        ]
        self.accounts.proposed(role, proposals, self.clock() - started)
        kept = screen(self.config.structure, proposals, may_defer)
        self.stats.candidates_rejected_structure += len(proposals) - len(kept)
        return kept

    def verify(self, proposals: Sequence[Proposal]) -> Optional[tuple[list[float], list[float]]]:
        """Target log-ratios and rewards of draft candidates, computed concurrently.
        None when the target or the reward could not answer before the deadline."""
        return self._unless_cut(self.scoring.verify, proposals)

    def rewards(self, proposals: Sequence[Proposal]) -> Optional[list[float]]:
        """Reward of each candidate as the last step of its beam, checked to be finite
        (read off target proposals' own states when the reward is a probe on the target).
        None when the deadline cut the reward: the caller salvages the round."""
        return self._unless_cut(self.scoring.proposal_rewards, proposals)

    def _unless_cut(self, score: Callable, *args):
        """The scoring's answer, or None when the deadline cut it (the run then stops)."""
        try:
            return score(*args, step=self.step_index + 1)
        except DeadlineExceededError:
            self.out_of_time()
            return None

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
            elapsed_s=self.timer.elapsed(),
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
            stats=self.accounts.final(winner, self.timer.elapsed(), self.call),
            method=method,
            finished=ended,
            budget_exhausted=stop in BUDGET_STOPS,
            stop_reason=stop,
            candidates_considered=self.accounts.considered,
        )
        streamed = "".join(node.step.text for node in winner.chain()[: self._streamed])
        self._emit(FinalEvent(result=result, delta=text[len(streamed) :]))
        return result

    # ---- helpers ----------------------------------------------------------------

    def _token_room(self, beam: Beam, prefix_len: int, model: LanguageModel) -> int:
        return min(
            self.config.max_step_tokens,
            self.budget.max_new_tokens - beam.total_tokens,
            model.context_window - prefix_len - 1,
        )

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
        values = self._unless_cut(self.scoring.beam_rewards, missing)
        for beam, value in zip(missing, values or ()):
            beam.step = replace(beam.step, reward=value)

    def _winner(self, pool: Sequence[Beam]) -> Beam:
        if self.config.final_selection == "weighted_vote":
            answers = [(extract_answer(b.text()), b.reward if b.reward is not None else 1.0) for b in pool]
            chosen = weighted_vote(answers)
            if chosen is not None:
                pool = [b for b, (a, _) in zip(pool, answers) if a == chosen]
        return max(pool, key=rank_key)
