"""The proposal pipeline behind evolve(): children are made and evaluated concurrently, and committed
strictly in the order they were proposed, so the same seed and the same LLM replies give the same run.

A child is proposed (parent chosen, operator drawn) only when a commit makes room, from the state
that commit left; its RNG is keyed by its number. Timing decides how long things take, never what
is chosen or stored. docs/evolve.md states the guarantees.
"""

from __future__ import annotations

import asyncio
import random
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING

from archive import Archive, Evaluation, Program, Run
from archive.normalize import normalized_hash
from archive.policy import Selection
from evaluators.api import EvaluatorError
from evaluators.protocol import Backend, CorrectnessSettings, EvalRequest, EvalResult, Status, TimingSettings
from kernelsmith.budget import RunStats, StopReason, room_for_another, spent
from kernelsmith.config import Settings
from kernelsmith.llm import LLMClient
from kernelsmith.mutators import Mutation, MutationContext, Mutator, OperatorMix
from kernelsmith.params import BackendLimits
from kernelsmith.recorder import Known, RunRecorder
from kernelsmith.tasks import Task

if TYPE_CHECKING:
    from evaluators.client import Evaluator
    from kernelsmith.evolve import Interrupt, Progress, Selector

NOTES_SHOWN = 3  # failed attempts from a parent that its next prompt lists


@dataclass
class _Proposal:
    """One child in flight: the seed, a stored program awaiting its evaluation (after a crash), or a
    mutation of a chosen parent."""

    kind: str  # "seed", "stored" or "child"
    number: int  # keys the child's RNG; children are numbered across all sessions of a run
    source: str | None = None  # the seed's
    program: Program | None = None  # the stored program's
    selection: Selection | None = None
    parent: Known | None = None
    mutator: Mutator | None = None
    context: MutationContext | None = None
    rng: random.Random | None = None
    mutation: Mutation | None = None
    result: EvalResult | None = None
    task: asyncio.Task[None] | None = None

    @property
    def made(self) -> bool:
        """Whether there is something to store: a child that was cancelled before its mutation
        finished never existed (and its unfinished LLM call left no record)."""
        return self.kind == "stored" or self.kind == "seed" or self.mutation is not None

    @property
    def candidate(self) -> str | None:
        if self.kind == "seed":
            return self.source
        if self.kind == "stored":
            return self.program.source if self.program else None
        return self.mutation.child_source if self.mutation is not None and self.mutation.ok else None


class Pipeline:
    def __init__(self, task: Task, settings: Settings, archive: Archive, evaluator: Evaluator, run: Run,
                 backend: str, *, llm: LLMClient | None, mix: OperatorMix, selector: Selector,
                 progress: Progress | None, interrupt: Interrupt, resumed: bool) -> None:
        self.task, self.settings, self.evaluator = task, settings, evaluator
        self.seed, self.backend, self.llm, self.mix = run.seed, backend, llm, mix
        self.selector, self.progress, self.interrupt = selector, progress, interrupt
        self.budgets = settings.budgets
        self.limits = BackendLimits.for_backend(backend)
        self.stats = RunStats(run_id=run.id, task_name=run.task_name, backend=backend,
                              measured=self.limits.measures_time, max_evals=self.budgets.max_evals,
                              resumed=resumed, uses_llm=mix.uses_llm)
        self.recorder = RunRecorder(archive, run, task, backend, self.stats)
        if llm is not None:
            llm.on_call = self.recorder.made_call
        self.in_flight: deque[_Proposal] = deque()
        self.evaluating: dict[str, asyncio.Future[EvalResult]] = {}  # normalized hash -> its evaluation
        self.next_number = 0
        self.window = 1
        self.slots = asyncio.Semaphore(1)
        self.stopping: StopReason | None = None
        self.stop_message = ""

    # -- setting up --------------------------------------------------------------------------------

    async def prepare(self) -> None:
        capacity = max(1, await self.evaluator.capacity(self.backend))
        self.slots = asyncio.Semaphore(capacity)
        # enough children in flight to keep every slot busy while the next ones are being written
        llm_width = self.settings.llm.max_concurrency if self.mix.uses_llm else 1
        self.window = self.settings.proposals or capacity + llm_width
        self.stats.proposals = self.window
        self.next_number = self.recorder.load()

    # -- the loop ----------------------------------------------------------------------------------

    async def run(self) -> tuple[RunStats, StopReason, str]:
        if self.progress is not None:
            self.progress.started(self.stats)
        reason = spent(self.budgets, self.stats)
        if reason is not None:
            self._stop(reason)
        else:
            self._launch()
        seen = self.interrupt.level
        while self.in_flight:
            head = self.in_flight[0]
            assert head.task is not None
            if not head.task.done():
                seen = await self._wait(head.task, seen)
                if seen >= 2:
                    await self._drop_all()
                    break
                if seen == 1 and self.stopping is None:
                    self._stop(StopReason.interrupted, "interrupted: the evaluations in flight finish and are "
                               "stored (interrupt again to drop them)")
                if self.stopping is None and spent(self.budgets, self.stats) == StopReason.wall_time:
                    self._stop(StopReason.wall_time)
                continue
            self.in_flight.popleft()
            self._commit(head)
            self._update()
            if self.stopping is None:
                reason = spent(self.budgets, self.stats)
                if reason is not None:
                    self._stop(reason)
                else:
                    self._launch()
        if self.stopping is None:  # nothing in flight and nothing allowed to start
            self._stop(spent(self.budgets, self.stats) or StopReason.idle)
        if self.stopping == StopReason.interrupted and self.interrupt.level < 2:
            self.stop_message = "interrupted; the evaluations in flight finished and were stored"
        self.recorder.add_unlinked_calls()
        self._update()
        return self.stats, self.stopping, self.stop_message

    async def _wait(self, task: asyncio.Task[None], seen: int) -> int:
        """Until the head child is done, an interrupt arrives, or the wall-time budget runs out."""
        timeout = None
        if self.stopping is None and self.budgets.wall_time_s is not None:
            timeout = max(0.0, self.budgets.wall_time_s - self.stats.elapsed_s)
        interrupted = asyncio.ensure_future(self.interrupt.wait_above(seen))
        try:
            await asyncio.wait([task, interrupted], timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            interrupted.cancel()
        return self.interrupt.level

    def _stop(self, reason: StopReason, message: str | None = None) -> None:
        """No new children; those whose mutation is still running are dropped, evaluations finish."""
        self.stopping = reason
        self.stop_message = message or reason.describe(self.budgets)
        for proposal in self.in_flight:
            if proposal.kind == "child" and proposal.mutation is None and proposal.task is not None:
                proposal.task.cancel()
        self.stats.last_event = f"stopping: {self.stop_message}"
        self._update()

    async def _drop_all(self) -> None:
        """A second interrupt: cancel everything, store what was made (unevaluated, for a resume)."""
        self.stopping = StopReason.interrupted
        self.stop_message = ("interrupted twice; the work in flight was dropped (children already made are "
                             "stored, and a resumed run evaluates them)")
        tasks = [p.task for p in self.in_flight if p.task is not None]
        for task in [*tasks, *self.evaluating.values()]:
            task.cancel()
        await asyncio.gather(*tasks, *self.evaluating.values(), return_exceptions=True)
        while self.in_flight:
            self._commit(self.in_flight.popleft())

    # -- proposing ---------------------------------------------------------------------------------

    def _launch(self) -> None:
        while len(self.in_flight) < self.window and room_for_another(self.budgets, self.stats, len(self.in_flight)):
            if not self.recorder.has_candidates and self.in_flight:
                break  # the first program goes alone: there is nothing to choose a parent from yet
            proposal = self._propose()
            proposal.task = asyncio.create_task(self._work(proposal), name=f"child {proposal.number}")
            self.in_flight.append(proposal)
        self.stats.in_flight = len(self.in_flight)

    def _propose(self) -> _Proposal:
        recorder = self.recorder
        if recorder.pending:
            return _Proposal("stored", -1, program=recorder.pending.popleft())
        if not recorder.has_candidates:
            if recorder.seed_program is None and self.task.seed_source is not None:
                self.next_number += 1
                return _Proposal("seed", self.next_number - 1, source=self.task.seed_source)
            if recorder.seed_program is not None:  # its evaluation was the evaluator's fault: again
                return _Proposal("stored", -1, program=recorder.seed_program)
        number = self.next_number
        self.next_number += 1
        selection = self.selector.select() if recorder.has_candidates else None
        parent = recorder.record(selection.parent.program_id) if selection is not None else None
        context = MutationContext(
            task_name=self.task.label,
            reference_source=self.task.source,
            limits=self.limits,
            parent=parent.view() if parent is not None else None,
            inspirations=[recorder.record(c.program_id).view() for c in selection.inspirations] if selection else [],
            notes=recorder.notes.get(parent.program.id if parent else None, [])[-NOTES_SHOWN:],
            max_error_chars=self.settings.prompts.max_error_chars,
        )
        rng = random.Random(f"{self.seed}:{number}")
        mutator = self.mix.choose(context, rng)  # NoOperator: evolve() tells the caller
        return _Proposal("child", number, selection=selection, parent=parent, mutator=mutator,
                         context=context, rng=rng)

    async def _work(self, proposal: _Proposal) -> None:
        if proposal.kind == "child":
            assert proposal.mutator is not None and proposal.context is not None and proposal.rng is not None
            proposal.mutation = await proposal.mutator.mutate(proposal.context, proposal.rng)
        source = proposal.candidate
        if source is None:
            return
        if proposal.kind != "stored" and self.recorder.cached(source, self.limits.measures_time) is not None:
            return  # the commit reuses the stored result: no evaluator time
        key = normalized_hash(source)
        evaluation = self.evaluating.get(key)
        if evaluation is None:  # an identical child in flight shares one evaluation
            evaluation = self.evaluating[key] = asyncio.ensure_future(self._evaluate(source))
        proposal.result = await asyncio.shield(evaluation)
        if proposal.result.status == Status.infra_error and self.evaluating.get(key) is evaluation:
            del self.evaluating[key]  # the evaluator's fault: the next identical child tries again

    async def _evaluate(self, source: str) -> EvalResult:
        evaluation = self.settings.evaluation
        request = EvalRequest(
            task_name=self.task.label,
            reference_source=self.task.source,
            candidate_source=source,
            backend=Backend(self.backend),
            correctness=CorrectnessSettings(trials=evaluation.trials),
            timing=TimingSettings(repetitions=evaluation.repetitions,
                                  baselines=["eager", "compile"] if evaluation.compile_baseline else ["eager"]),
            time_limit_s=evaluation.time_limit_s,
        )
        async with self.slots:
            return await self.evaluator.evaluate(request)

    # -- committing --------------------------------------------------------------------------------

    def _commit(self, proposal: _Proposal) -> None:
        task = proposal.task
        assert task is not None
        error = None if task.cancelled() else task.exception()
        if error is not None and not isinstance(error, EvaluatorError):
            raise error  # a bug, not a verdict: surface it (everything before it is committed)
        if not proposal.made:
            return
        recorder, mutation = self.recorder, proposal.mutation
        if mutation is not None and not mutation.ok:
            recorder.add_attempt(proposal.number, proposal.parent, proposal.selection, mutation)
            origin = f" from #{proposal.parent.program.id}" if proposal.parent else ""
            self.stats.last_event = f"{mutation.operator}{origin}: failed: {_first_line(mutation.error or '')}"
            return
        cached = None
        if proposal.kind == "stored":
            assert proposal.program is not None
            program = proposal.program
        else:
            cached = recorder.cached(proposal.candidate or "", self.limits.measures_time)
            reused_from = cached.program_id if cached else None
            if proposal.kind == "seed":
                program = recorder.add_seed(proposal.candidate or "", reused_from)
            else:
                assert mutation is not None
                program = recorder.add_child(proposal.number, proposal.parent, proposal.selection, mutation,
                                             reused_from)
        result = cached.result if cached is not None else proposal.result
        if result is None:  # dropped, or the evaluator failed: the program is stored; a resumed run evaluates it
            if error is not None and self.stopping is None:
                self._stop(StopReason.evaluator_failed, f"the evaluator failed: {error}")
            return
        evaluation = recorder.add_evaluation(program, result, reused=cached is not None)
        self.selector.observe(program, evaluation)
        self.stats.last_event = self._event(program, evaluation, proposal, cached)

    def _event(self, program: Program, evaluation: Evaluation, proposal: _Proposal, cached: Evaluation | None) -> str:
        origin = f" from #{proposal.parent.program.id}" if proposal.parent else ""
        what = "re-evaluated" if proposal.kind == "stored" else f"{program.operator}{origin}"
        verdict = _verdict(evaluation, self.limits.measures_time)
        if cached is not None:
            verdict += f" (repeat of #{program.duplicate_of or cached.program_id}: result reused)"
        return f"#{program.id} {what}: {verdict}"

    def _update(self) -> None:
        self.stats.in_flight = len(self.in_flight)
        if self.progress is not None:
            self.progress.update(self.stats)

    async def aclose(self) -> None:
        leftovers = [p.task for p in self.in_flight if p.task is not None] + list(self.evaluating.values())
        for task in leftovers:
            task.cancel()
        await asyncio.gather(*leftovers, return_exceptions=True)
        if self.llm is not None:
            await self.llm.aclose()


def _verdict(evaluation: Evaluation, measured: bool) -> str:
    if evaluation.status == Status.ok:
        if evaluation.speedup is not None:
            return f"ok, {evaluation.speedup:.2f}x"
        return "ok" if measured else "ok (correct, not timed)"
    return f"{evaluation.status.value}: {_first_line(evaluation.result.message)}"


def _first_line(text: str, limit: int = 100) -> str:
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line if len(line) <= limit else line[: limit - 3] + "..."
