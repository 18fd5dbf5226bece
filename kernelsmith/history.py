"""A run read back from the archive for people: its results in the order they arrived, the best speedup
so far, what became of every program, and the lineage of its best program with the diff of each step.

`kernelsmith show`, the HTML report and the leaderboard's standings all read runs through here.
"""

from __future__ import annotations

import difflib
import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from archive import Archive, Evaluation, GenerationStats, Program, Run
from evaluators.protocol import Backend, Status

FAILED_MUTATION = "failed mutation"  # a child no program came of (the loop stores the attempt and its error)
NOT_EVALUATED = "not evaluated"  # stored, then the run stopped before its result came


@dataclass(frozen=True)
class Result:
    """One stored evaluation, numbered in the order results reached the run."""

    number: int
    program_id: int
    status: Status
    speedup: float | None
    speedup_compile: float | None
    reused: bool  # an identical program's result, stored again without running


@dataclass(frozen=True)
class Step:
    """One program on the way from the run's first program to its best."""

    program: Program
    evaluation: Evaluation | None
    diff: str  # unified diff of the source from the parent's; empty for the first program

    @property
    def description(self) -> str:
        return str(self.program.metadata.get("description") or self.program.operator)


@dataclass
class RunHistory:
    run: Run
    programs: list[Program]
    latest: dict[int, Evaluation]  # program id -> its latest usable evaluation (infra_error if nothing else)
    results: list[Result]
    best: tuple[Program, Evaluation] | None
    lineage: list[Step]
    generations: list[GenerationStats]
    backend: str | None
    llm_calls: int = 0
    tokens: int = 0
    cost: float = 0.0
    outcomes: Counter[str] = field(default_factory=Counter)  # per program: status, failed mutation, not evaluated

    @property
    def measured(self) -> bool:
        """Whether speed was measured: every backend but the CPU interpreter times candidates."""
        return self.backend is not None and self.backend != Backend.triton_interpret.value

    @property
    def best_correct(self) -> tuple[Program, Evaluation] | None:
        if self.best is None or self.best[1].status != Status.ok:
            return None
        return self.best

    @property
    def device(self) -> str | None:
        devices = [e.device for e in self.latest.values() if e.device]
        return Counter(devices).most_common(1)[0][0] if devices else None

    def best_so_far(self) -> list[float | None]:
        """After each result, the best speedup of a correct program yet (None before the first)."""
        best: float | None = None
        curve = []
        for result in self.results:
            if result.status == Status.ok and _finite(result.speedup):
                best = result.speedup if best is None else max(best, result.speedup)  # type: ignore[type-var]
            curve.append(best)
        return curve

    def correct_so_far(self) -> list[int]:
        """After each result, how many distinct programs have been found correct."""
        seen: set[int] = set()
        curve = []
        for result in self.results:
            if result.status == Status.ok:
                seen.add(result.program_id)
            curve.append(len(seen))
        return curve


def read_history(archive: Archive, run: Run | int) -> RunHistory:
    run = archive.get_run(run)
    programs = archive.programs(run)
    every: list[tuple[Evaluation, Program]] = []
    latest: dict[int, Evaluation] = {}
    outcomes: Counter[str] = Counter()
    for program in programs:
        evaluations = archive.evaluations(program)
        every += [(evaluation, program) for evaluation in evaluations]
        usable = [e for e in evaluations if e.status != Status.infra_error] or evaluations
        if usable:
            latest[program.id] = usable[-1]
            outcomes[usable[-1].status.value] += 1
        else:
            outcomes[FAILED_MUTATION if "attempt_error" in program.metadata else NOT_EVALUATED] += 1
    every.sort(key=lambda pair: pair[0].id)
    results = [
        Result(number, e.program_id, e.status, e.speedup, e.speedup_compile,
               reused="reused_from" in p.metadata)
        for number, (e, p) in enumerate(every, start=1)
    ]
    best = archive.best(run)
    by_id = {p.id: p for p in programs}
    path = archive.path_to_best(run)
    lineage = [
        Step(program, latest.get(program.id), _diff(by_id.get(program.parent_id or -1), program))
        for program in path
    ]
    calls = archive.llm_calls(run)
    backend = run.config.get("backend") or (every[0][0].backend if every else None)
    return RunHistory(
        run=run,
        programs=programs,
        latest=latest,
        results=results,
        best=best,
        lineage=lineage,
        generations=archive.generation_stats(run),
        backend=backend,
        llm_calls=len(calls),
        tokens=sum((c.prompt_tokens or 0) + (c.completion_tokens or 0) for c in calls),
        cost=sum(c.cost or 0.0 for c in calls),
        outcomes=outcomes,
    )


def history_json(history: RunHistory) -> dict[str, Any]:
    """What `kernelsmith show --json` prints: plain JSON, stable keys."""
    run = history.run
    best = history.best
    return {
        "run": {
            "id": run.id, "task": run.task_name, "status": run.status.value, "seed": run.seed,
            "created_at": run.created_at.isoformat(), "updated_at": run.updated_at.isoformat(),
            "backend": history.backend, "device": history.device, "measured": history.measured,
            "config": run.config,
        },
        "programs": len(history.programs),
        "evaluations": len(history.results),
        "reused": sum(r.reused for r in history.results),
        "outcomes": dict(history.outcomes),
        "best": None if best is None else {
            "program_id": best[0].id, "status": best[1].status.value, "correct": best[1].status == Status.ok,
            "speedup": _number(best[1].speedup), "speedup_compile": _number(best[1].speedup_compile),
            "source": best[0].source,
        },
        "lineage": [
            {
                "program_id": step.program.id, "parent_id": step.program.parent_id,
                "operator": step.program.operator, "model": step.program.model,
                "generation": step.program.generation, "description": step.description,
                "status": step.evaluation.status.value if step.evaluation else None,
                "speedup": _number(step.evaluation.speedup) if step.evaluation else None,
                "diff": step.diff,
            }
            for step in history.lineage
        ],
        "best_so_far": [_number(value) for value in history.best_so_far()],
        "generations": [
            {"generation": g.generation, "programs": g.count, "evaluated": g.evaluated, "ok": g.ok,
             "best_speedup": _number(g.best_speedup), "mean_speedup": _number(g.mean_speedup),
             "statuses": g.statuses}
            for g in history.generations
        ],
        "llm": {"calls": history.llm_calls, "tokens": history.tokens, "cost": history.cost},
    }


def _diff(parent: Program | None, child: Program) -> str:
    if parent is None:
        return ""
    lines = difflib.unified_diff(
        parent.source.splitlines(keepends=True), child.source.splitlines(keepends=True),
        fromfile=f"program #{parent.id}", tofile=f"program #{child.id}",
    )
    return "".join(line if line.endswith("\n") else line + "\n" for line in lines)


def _finite(value: float | None) -> bool:
    return value is not None and math.isfinite(value)


def _number(value: float | None) -> float | None:
    return value if _finite(value) else None
