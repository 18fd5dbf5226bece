"""A run's side of the archive: the rows it writes (programs, attempts, evaluations, LLM calls) and,
for a resumed run, what it reads back (counters, known results, attempt notes, unevaluated programs).

Conventions other readers rely on (docs/evolve.md): a program's metadata holds `description` (what
its mutation changed), `mode` (how its parent was chosen) and `number` (its place in the run's
order of proposals); `reused_from` names the program whose stored result it reused; `attempt_error`
marks an attempt, a mutation that made no program, stored with its parent's source unchanged and
never evaluated. An LLM call's prompt is the JSON list of chat messages sent.
"""

from __future__ import annotations

import json
from collections import deque
from dataclasses import dataclass

from archive import Archive, Evaluation, Program, Run
from archive.fitness import Fitness, usable
from archive.policy import Selection
from evaluators.protocol import EvalResult
from kernelsmith.budget import RunStats
from kernelsmith.llm import LLMCall
from kernelsmith.mutators import Mutation, ProgramView
from kernelsmith.tasks import Task

NOTE_CHARS = 600  # an attempt's error as its parent's next prompts show it


@dataclass
class Known:
    """A program with its latest usable evaluation (None before it has one)."""

    program: Program
    evaluation: Evaluation | None

    def view(self) -> ProgramView:
        evaluation = self.evaluation
        return ProgramView(
            source=self.program.source,
            result=evaluation.result if evaluation else None,
            score=evaluation.speedup if evaluation else None,
            program_id=self.program.id,
            operator=self.program.operator,
            description=self.program.metadata.get("description"),
        )


def fitness(evaluation: Evaluation) -> Fitness:
    return Fitness(evaluation.status, evaluation.stage, evaluation.speedup)


class RunRecorder:
    def __init__(self, archive: Archive, run: Run, task: Task, backend: str, stats: RunStats) -> None:
        self.archive, self.run, self.task, self.backend, self.stats = archive, run, task, backend, stats
        self.known: dict[int, Known] = {}
        self.notes: dict[int | None, list[str]] = {}  # parent id (None: no parent) -> its attempts' errors
        self.pending: deque[Program] = deque()  # stored, never evaluated: the process died first
        self.seed_program: Program | None = None
        self.has_candidates = False  # some program has a usable result: parents can be chosen
        # calls stored when they finished, not yet counted with the program they made: id(call) -> (call, row id)
        self.unlinked_calls: dict[int, tuple[LLMCall, int]] = {}

    def load(self) -> int:
        """Read back what the run holds; returns how many program rows it has."""
        programs = self.archive.programs(self.run)
        stored: list[tuple[Evaluation, Program]] = []
        for program in programs:
            if "attempt_error" in program.metadata:
                self.stats.add_failed_mutation()
                self.note(program.parent_id, program.operator, program.metadata["attempt_error"])
                continue
            if program.operator == "seed" and self.seed_program is None:
                self.seed_program = program
            evaluations = self.archive.evaluations(program)
            if not evaluations:
                self.pending.append(program)
            stored += [(evaluation, program) for evaluation in evaluations]
        for evaluation, program in sorted(stored, key=lambda pair: pair[0].id):
            reused = "reused_from" in program.metadata
            self.stats.add_result(program.id, fitness(evaluation), reused=reused)
            self.remember(program, evaluation)
            if not reused and evaluation.device:
                self.stats.device = evaluation.device
        self.stats.idle = self.stats.infra_in_a_row = 0  # a resumed run gets a fresh window for these
        for call in self.archive.llm_calls(self.run):
            self.stats.add_llm_call(call.prompt_tokens or 0, call.completion_tokens or 0, call.cost or 0.0,
                                    call.error is not None)
        return len(programs)

    # -- reading ------------------------------------------------------------------------------------

    def cached(self, source: str, measures_time: bool) -> Evaluation | None:
        """A stored result for the same normalized program, task, reference and backend (and, where speed
        is measured, device), from this run or any other."""
        if measures_time and self.stats.device is None:
            return None  # speedups from another GPU would not compare; the device is known after one result
        return self.archive.find_cached_result(
            self.task.label, self.backend, source, reference_source=self.task.source,
            device=self.stats.device if measures_time else None,
        )

    def record(self, program_id: int) -> Known:
        known = self.known.get(program_id)
        if known is None:  # a selector may name programs this session has not seen
            known = Known(self.archive.get_program(program_id), self.archive.latest_evaluation(program_id))
            self.known[program_id] = known
        return known

    def remember(self, program: Program, evaluation: Evaluation) -> None:
        if usable(evaluation.status):
            self.has_candidates = True
            self.known[program.id] = Known(program, evaluation)
        elif program.id not in self.known:
            self.known[program.id] = Known(program, None)

    # -- writing ------------------------------------------------------------------------------------

    def add_seed(self, source: str, reused_from: int | None) -> Program:
        metadata: dict[str, object] = {"description": "the task's seed kernel"}
        if reused_from is not None:
            metadata["reused_from"] = reused_from
        self.seed_program = self.archive.add_program(self.run, source, operator="seed", metadata=metadata)
        return self.seed_program

    def add_child(self, number: int, parent: Known | None, selection: Selection | None, mutation: Mutation,
                  reused_from: int | None) -> Program:
        assert mutation.child_source is not None
        metadata: dict[str, object] = {"description": mutation.description}
        if reused_from is not None:
            metadata["reused_from"] = reused_from
        return self._add(number, parent, selection, mutation, mutation.child_source, metadata)

    def add_attempt(self, number: int, parent: Known | None, selection: Selection | None, mutation: Mutation) -> Program:
        """A mutation that made no program, kept with its error; the parent's next prompts show it."""
        source = parent.program.source if parent else f"# {mutation.operator}: no program was made\n"
        program = self._add(number, parent, selection, mutation, source, {"attempt_error": mutation.error})
        self.note(parent.program.id if parent else None, mutation.operator, mutation.error or "")
        self.stats.add_failed_mutation()
        return program

    def _add(self, number: int, parent: Known | None, selection: Selection | None, mutation: Mutation,
             source: str, metadata: dict[str, object]) -> Program:
        if selection is not None:
            metadata["mode"] = getattr(selection.mode, "value", str(selection.mode))
        program = self.archive.add_program(
            self.run, source,
            parent_id=parent.program.id if parent else None,
            inspiration_ids=[c.program_id for c in selection.inspirations] if selection else (),
            operator=mutation.operator,
            model=mutation.model,
            generation=parent.program.generation + 1 if parent else 0,
            island=selection.island if selection else 0,
            metadata={**metadata, "number": number},
        )
        for call in mutation.llm_calls:
            self.add_call(call, program)
        return program

    def add_evaluation(self, program: Program, result: EvalResult, *, reused: bool) -> Evaluation:
        evaluation = self.archive.add_evaluation(program, result, backend=self.backend)
        self.remember(program, evaluation)
        if not reused and self.stats.device is None and evaluation.device:
            self.stats.device = evaluation.device
        self.stats.add_result(program.id, fitness(evaluation), reused=reused)
        return evaluation

    def add_call(self, call: LLMCall, program: Program | None) -> None:
        """Count a call with the program it made (stored now, or linked if stored when it finished)."""
        stored = self.unlinked_calls.pop(id(call), None)
        if stored is None:
            self._store_call(call, program)
        elif program is not None:
            self.archive.link_llm_calls([stored[1]], program)
        self.stats.add_llm_call(call.prompt_tokens, call.completion_tokens, call.cost, not call.ok)

    def made_call(self, call: LLMCall) -> None:
        """The LLM client's callback: every finished call is stored at once, its program linked when the
        child is committed. A process killed meanwhile (its children still being evaluated) loses no
        call: a resumed run counts their tokens and cost."""
        self.unlinked_calls[id(call)] = (call, self._store_call(call, None))

    def add_unlinked_calls(self) -> None:
        # every finished call belongs to a stored child; one that does not (its child was dropped) is
        # stored already and is counted here, once
        for call, _ in list(self.unlinked_calls.values()):
            self.add_call(call, None)

    def _store_call(self, call: LLMCall, program: Program | None) -> int:
        return self.archive.add_llm_call(
            self.run, model=call.model, prompt=json.dumps(call.messages, ensure_ascii=False),
            response=call.response or "", program=program, prompt_tokens=call.prompt_tokens,
            completion_tokens=call.completion_tokens, cost=call.cost, latency_s=call.latency_s, error=call.error,
        ).id

    def note(self, parent_id: int | None, operator: str, error: str) -> None:
        note = f"{operator}: {error}"
        self.notes.setdefault(parent_id, []).append(note if len(note) <= NOTE_CHARS else note[: NOTE_CHARS - 3] + "...")
