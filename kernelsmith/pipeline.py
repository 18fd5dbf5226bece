"""The proposal pipeline behind evolve(): children are made and evaluated concurrently, and committed
strictly in the order they were proposed, so the same seed and the same LLM replies give the same run.

A child is proposed (parent chosen, operator drawn) only when a commit makes room, from the state
that commit left; its RNG is keyed by its number. Timing decides how long things take, never what
is chosen or stored. docs/evolve.md states the guarantees.
"""

from __future__ import annotations

import asyncio
import json
import random
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING

from archive import Archive, Evaluation, Program, Run
from archive.fitness import Fitness, usable
from archive.normalize import normalized_hash
from archive.policy import Selection
from evaluators.api import EvaluatorError
from evaluators.protocol import Backend, CorrectnessSettings, EvalRequest, EvalResult, Status, TimingSettings
from kernelsmith.budget import RunStats, StopReason, room_for_another, spent
from kernelsmith.config import Settings
from kernelsmith.llm import LLMCall, LLMClient
from kernelsmith.mutators import Mutation, MutationContext, Mutator, OperatorMix, ProgramView
from kernelsmith.params import BackendLimits
from kernelsmith.tasks import Task

if TYPE_CHECKING:
    from evaluators.client import Evaluator
    from kernelsmith.evolve import Interrupt, Progress, Selector

NOTES_SHOWN = 3  # failed attempts from a parent that its next prompt lists
NOTE_CHARS = 600


@dataclass
class _Known:
    program: Program
    evaluation: Evaluation | None


@dataclass
class _Proposal:
    """One child in flight: the seed, a stored program awaiting its evaluation (after a crash), or a
    mutation of a chosen parent."""

    kind: str  # "seed", "stored" or "child"
    number: int  # keys the child's RNG; children are numbered across all sessions of a run
    source: str | None = None  # the seed's
    program: Program | None = None  # the stored program's
    selection: Selection | None = None
    parent: _Known | None = None
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
        self.task, self.settings, self.archive, self.evaluator = task, settings, archive, evaluator
        self.run_record, self.backend, self.llm, self.mix = run, backend, llm, mix
        self.selector, self.progress, self.interrupt = selector, progress, interrupt
        self.budgets = settings.budgets
        self.limits = BackendLimits.for_backend(backend)
        self.stats = RunStats(run_id=run.id, task_name=run.task_name, backend=backend,
                              measured=self.limits.measures_time, max_evals=self.budgets.max_evals,
                              resumed=resumed, uses_llm=mix.uses_llm)
        if llm is not None:
            llm.on_call = self._made_call
        self.in_flight: deque[_Proposal] = deque()
        self.known: dict[int, _Known] = {}
        self.notes: dict[int | None, list[str]] = {}
        self.pending: deque[Program] = deque()
        self.seed_program: Program | None = None
        self.evaluating: dict[str, asyncio.Future[EvalResult]] = {}  # normalized hash -> its evaluation
        self.unstored_calls: dict[int, LLMCall] = {}
        self.has_candidates = False
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
        self._load_history()

    def _load_history(self) -> None:
        """Counters, known results, notes and unevaluated programs of a run, from the archive."""
        programs = self.archive.programs(self.run_record)
        self.next_number = len(programs)
        stored: list[tuple[Evaluation, Program]] = []
        for program in programs:
            if "attempt_error" in program.metadata:
                self.stats.add_failed_mutation()
                self._note(program.parent_id, program.operator, program.metadata["attempt_error"])
                continue
            if program.operator == "seed" and self.seed_program is None:
                self.seed_program = program
            evaluations = self.archive.evaluations(program)
            if not evaluations:
                self.pending.append(program)  # stored, then the process died: evaluate it first
            stored += [(evaluation, program) for evaluation in evaluations]
        for evaluation, program in sorted(stored, key=lambda pair: pair[0].id):
            reused = "reused_from" in program.metadata
            self.stats.add_result(program.id, _fitness(evaluation), reused=reused)
            self._remember(program, evaluation)
            if not reused and evaluation.device:
                self.stats.device = evaluation.device
        self.stats.idle = self.stats.infra_in_a_row = 0  # a resumed run gets a fresh window for these
        for call in self.archive.llm_calls(self.run_record):
            self.stats.add_llm_call(call.prompt_tokens or 0, call.completion_tokens or 0, call.cost or 0.0,
                                    call.error is not None)

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
            if self.stopping is None:
                reason = spent(self.budgets, self.stats)
                if reason is not None:
                    self._stop(reason)
                else:
                    self._launch()
            self._update()
        if self.stopping is None:  # nothing in flight and nothing allowed to start
            self._stop(spent(self.budgets, self.stats) or StopReason.idle)
        if self.stopping == StopReason.interrupted and self.interrupt.level < 2:
            self.stop_message = "interrupted; the evaluations in flight finished and were stored"
        self._store_unlinked_calls()
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
            if not self.has_candidates and self.in_flight:
                break  # the first program goes alone: there is nothing to choose a parent from yet
            proposal = self._propose()
            proposal.task = asyncio.create_task(self._work(proposal), name=f"child {proposal.number}")
            self.in_flight.append(proposal)
        self.stats.in_flight = len(self.in_flight)

    def _propose(self) -> _Proposal:
        if self.pending:
            return _Proposal("stored", -1, program=self.pending.popleft())
        if not self.has_candidates:
            if self.seed_program is None and self.task.seed_source is not None:
                self.next_number += 1
                return _Proposal("seed", self.next_number - 1, source=self.task.seed_source)
            if self.seed_program is not None:  # its evaluation was the evaluator's fault: again
                return _Proposal("stored", -1, program=self.seed_program)
        number = self.next_number
        self.next_number += 1
        selection = self.selector.select() if self.has_candidates else None
        parent = self._record(selection.parent.program_id) if selection is not None else None
        context = MutationContext(
            task_name=self.task.label,
            reference_source=self.task.source,
            limits=self.limits,
            parent=_view(parent) if parent is not None else None,
            inspirations=[_view(self._record(c.program_id)) for c in selection.inspirations] if selection else [],
            notes=self.notes.get(parent.program.id if parent else None, [])[-NOTES_SHOWN:],
            max_error_chars=self.settings.prompts.max_error_chars,
        )
        rng = random.Random(f"{self.run_record.seed}:{number}")
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
        if proposal.kind != "stored" and self._cached(source) is not None:
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

    def _cached(self, source: str) -> Evaluation | None:
        """A stored result for the same normalized program, task, reference and backend (and, where speed
        is measured, device), from this run or any other."""
        if self.limits.measures_time and self.stats.device is None:
            return None  # speedups from another GPU would not compare; the device is known after one result
        return self.archive.find_cached_result(
            self.task.label, self.backend, source, reference_source=self.task.source,
            device=self.stats.device if self.limits.measures_time else None,
        )

    # -- committing --------------------------------------------------------------------------------

    def _commit(self, proposal: _Proposal) -> None:
        task = proposal.task
        assert task is not None
        if not proposal.made:
            return
        error = None if task.cancelled() else task.exception()
        if error is not None and not isinstance(error, EvaluatorError):
            raise error  # a bug, not a verdict: surface it (everything before it is committed)
        mutation = proposal.mutation
        if mutation is not None and not mutation.ok:
            self._store_attempt(proposal, mutation)
            return
        cached = self._cached(proposal.candidate or "") if proposal.kind != "stored" else None
        program = self._store_program(proposal, cached)
        if cached is not None:
            evaluation = self.archive.add_evaluation(program, cached.result, backend=self.backend)
        elif proposal.result is not None:
            evaluation = self.archive.add_evaluation(program, proposal.result, backend=self.backend)
        else:  # dropped, or the evaluator failed: the program is stored and a resumed run evaluates it
            if error is not None and self.stopping is None:
                self._stop(StopReason.evaluator_failed, f"the evaluator failed: {error}")
            return
        self._observe(program, evaluation, proposal, reused=cached is not None)

    def _store_program(self, proposal: _Proposal, cached: Evaluation | None) -> Program:
        if proposal.kind == "stored":
            assert proposal.program is not None
            return proposal.program
        metadata: dict[str, object] = {}
        if cached is not None:
            metadata["reused_from"] = cached.program_id
        if proposal.kind == "seed":
            metadata["description"] = "the task's seed kernel"
            program = self.archive.add_program(self.run_record, proposal.candidate or "", operator="seed", metadata=metadata)
            self.seed_program = program
            return program
        mutation = proposal.mutation
        assert mutation is not None and mutation.child_source is not None
        metadata["description"] = mutation.description
        program = self._add_child(proposal, mutation.child_source, mutation, metadata)
        return program

    def _store_attempt(self, proposal: _Proposal, mutation: Mutation) -> None:
        """A mutation that made no program: stored as a row of its own, never evaluated, with the error,
        the parent's source unchanged, and its LLM calls; the error is shown to the parent's next prompts."""
        parent = proposal.parent
        source = parent.program.source if parent else f"# {mutation.operator}: no program was made\n"
        self._add_child(proposal, source, mutation, {"attempt_error": mutation.error})
        self._note(parent.program.id if parent else None, mutation.operator, mutation.error or "")
        self.stats.add_failed_mutation()
        origin = f" from #{parent.program.id}" if parent else ""
        self.stats.last_event = f"{mutation.operator}{origin}: failed: {_first_line(mutation.error or '')}"

    def _add_child(self, proposal: _Proposal, source: str, mutation: Mutation, metadata: dict[str, object]) -> Program:
        selection, parent = proposal.selection, proposal.parent
        if selection is not None:
            metadata["mode"] = getattr(selection.mode, "value", str(selection.mode))
        program = self.archive.add_program(
            self.run_record, source,
            parent_id=parent.program.id if parent else None,
            inspiration_ids=[c.program_id for c in selection.inspirations] if selection else (),
            operator=mutation.operator,
            model=mutation.model,
            generation=parent.program.generation + 1 if parent else 0,
            island=selection.island if selection else 0,
            metadata={**metadata, "number": proposal.number},
        )
        for call in mutation.llm_calls:
            self._store_call(call, program)
        return program

    def _store_call(self, call: LLMCall, program: Program | None) -> None:
        self.archive.add_llm_call(
            self.run_record, model=call.model, prompt=json.dumps(call.messages, ensure_ascii=False),
            response=call.response or "", program=program, prompt_tokens=call.prompt_tokens,
            completion_tokens=call.completion_tokens, cost=call.cost, latency_s=call.latency_s, error=call.error,
        )
        self.unstored_calls.pop(id(call), None)
        self.stats.add_llm_call(call.prompt_tokens, call.completion_tokens, call.cost, not call.ok)

    def _made_call(self, call: LLMCall) -> None:
        self.unstored_calls[id(call)] = call

    def _store_unlinked_calls(self) -> None:
        # every finished call belongs to a stored child; should one not, it is still recorded, once
        for call in list(self.unstored_calls.values()):
            self._store_call(call, None)

    def _observe(self, program: Program, evaluation: Evaluation, proposal: _Proposal, *, reused: bool) -> None:
        self._remember(program, evaluation)
        self.selector.observe(program, evaluation)
        if not reused and self.stats.device is None and evaluation.device:
            self.stats.device = evaluation.device
        self.stats.add_result(program.id, _fitness(evaluation), reused=reused)
        origin = f" from #{proposal.parent.program.id}" if proposal.parent else ""
        what = "re-evaluated" if proposal.kind == "stored" else f"{program.operator}{origin}"
        verdict = _verdict(evaluation, self.limits.measures_time)
        if reused:
            verdict += f" (repeat of #{program.duplicate_of or program.metadata.get('reused_from')}: result reused)"
        self.stats.last_event = f"#{program.id} {what}: {verdict}"

    def _remember(self, program: Program, evaluation: Evaluation) -> None:
        if usable(evaluation.status):
            self.has_candidates = True
            self.known[program.id] = _Known(program, evaluation)
        elif program.id not in self.known:
            self.known[program.id] = _Known(program, None)

    def _record(self, program_id: int) -> _Known:
        known = self.known.get(program_id)
        if known is None:  # a selector may name programs this session has not seen
            known = _Known(self.archive.get_program(program_id), self.archive.latest_evaluation(program_id))
            self.known[program_id] = known
        return known

    def _note(self, parent_id: int | None, operator: str, error: str) -> None:
        note = f"{operator}: {error}"
        self.notes.setdefault(parent_id, []).append(note if len(note) <= NOTE_CHARS else note[: NOTE_CHARS - 3] + "...")

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


def _fitness(evaluation: Evaluation) -> Fitness:
    return Fitness(evaluation.status, evaluation.stage, evaluation.speedup)


def _view(known: _Known) -> ProgramView:
    evaluation = known.evaluation
    return ProgramView(
        source=known.program.source,
        result=evaluation.result if evaluation else None,
        score=evaluation.speedup if evaluation else None,
        program_id=known.program.id,
        operator=known.program.operator,
        description=known.program.metadata.get("description"),
    )


def _verdict(evaluation: Evaluation, measured: bool) -> str:
    if evaluation.status == Status.ok:
        if evaluation.speedup is not None:
            return f"ok, {evaluation.speedup:.2f}x"
        return "ok" if measured else "ok (correct, not timed)"
    return f"{evaluation.status.value}: {_first_line(evaluation.result.message)}"


def _first_line(text: str, limit: int = 100) -> str:
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line if len(line) <= limit else line[: limit - 3] + "..."
