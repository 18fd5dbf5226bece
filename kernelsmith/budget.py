"""What a run has spent and when it must stop: evaluations, LLM calls, tokens, cost, wall time, a
target speedup, stagnation, and a search that keeps proposing nothing new."""

from __future__ import annotations

import math
import time
from collections import Counter
from dataclasses import dataclass, field
from enum import Enum

from archive.fitness import Fitness, rank_key
from evaluators.protocol import Status
from kernelsmith.config import Budgets

INFRA_ERRORS_IN_A_ROW = 5  # an evaluator failing this often in a row is broken, not unlucky


class StopReason(str, Enum):
    max_evals = "max_evals"
    max_llm_calls = "max_llm_calls"
    max_tokens = "max_tokens"
    max_cost = "max_cost"
    wall_time = "wall_time"
    target_speedup = "target_speedup"
    stagnation = "stagnation"
    idle = "idle"
    interrupted = "interrupted"
    evaluator_failed = "evaluator_failed"

    @property
    def finished(self) -> bool:
        """A budget ended the run (it is complete as configured), rather than an interruption or a fault."""
        return self not in (StopReason.interrupted, StopReason.evaluator_failed)

    def describe(self, budgets: Budgets) -> str:
        return {
            StopReason.max_evals: f"evaluation budget spent ({budgets.max_evals})",
            StopReason.max_llm_calls: f"LLM call budget spent ({budgets.max_llm_calls})",
            StopReason.max_tokens: f"token budget spent ({budgets.max_tokens})",
            StopReason.max_cost: f"cost budget spent (${budgets.max_cost})",
            StopReason.wall_time: f"wall-time budget spent ({budgets.wall_time_s} s)",
            StopReason.target_speedup: f"target speedup {budgets.target_speedup}x reached",
            StopReason.stagnation: f"no better program in the last {budgets.stagnation} evaluations",
            StopReason.idle: f"the last {budgets.idle} children were all repeats or failed mutations",
            StopReason.interrupted: "interrupted",
            StopReason.evaluator_failed: f"the evaluator failed (or {INFRA_ERRORS_IN_A_ROW} infra_errors in a row)",
        }[self]


@dataclass
class RunStats:
    """The live state of a run, as budgets and the progress display read it. Counts cover every
    session of the run (a resumed run starts from what the archive holds); wall time is this session's."""

    run_id: int
    task_name: str
    backend: str
    measured: bool  # whether the backend times candidates (the CPU interpreter does not)
    max_evals: int | None
    device: str | None = None
    resumed: bool = False
    proposals: int = 1  # children made at once
    uses_llm: bool = False
    evaluations: int = 0  # evaluations run (results reused from the archive are not counted)
    reused: int = 0  # children whose identical program already had a result
    failed_mutations: int = 0  # children no program came of (a diff that did not apply...)
    statuses: Counter[str] = field(default_factory=Counter)
    llm_calls: int = 0
    failed_llm_calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float = 0.0
    best_program_id: int | None = None
    best_fitness: Fitness | None = None
    since_improvement: int = 0  # evaluations since the best last changed
    idle: int = 0  # children in a row that needed no evaluation
    infra_in_a_row: int = 0
    in_flight: int = 0
    started: float = field(default_factory=time.monotonic)
    last_event: str = ""

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    @property
    def best_speedup(self) -> float | None:
        fitness = self.best_fitness
        if fitness is None or not fitness.ok or fitness.speedup is None or not math.isfinite(fitness.speedup):
            return None
        return fitness.speedup

    @property
    def best_correct(self) -> bool:
        return self.best_fitness is not None and self.best_fitness.ok

    @property
    def elapsed_s(self) -> float:
        return time.monotonic() - self.started

    def add_llm_call(self, prompt_tokens: int, completion_tokens: int, cost: float, failed: bool) -> None:
        self.llm_calls += 1
        self.failed_llm_calls += int(failed)
        self.prompt_tokens += prompt_tokens
        self.completion_tokens += completion_tokens
        self.cost += cost

    def add_result(self, program_id: int, fitness: Fitness, *, reused: bool) -> None:
        """Count one stored result; `reused` when it was taken from the archive instead of evaluated."""
        self.statuses[fitness.status.value] += 1
        if reused:
            self.reused += 1
            self.idle += 1
        else:
            self.evaluations += 1
            self.idle = 0
            self.infra_in_a_row = self.infra_in_a_row + 1 if fitness.status == Status.infra_error else 0
        if fitness.status == Status.infra_error:
            return  # says nothing about the candidate: never the best, never progress
        if self.best_fitness is None or rank_key(program_id, fitness) > rank_key(
            self.best_program_id or 0, self.best_fitness
        ):
            self.best_program_id, self.best_fitness = program_id, fitness
            self.since_improvement = 0
        elif not reused:
            self.since_improvement += 1

    def add_failed_mutation(self) -> None:
        self.failed_mutations += 1
        self.idle += 1


def spent(budgets: Budgets, stats: RunStats) -> StopReason | None:
    """The first budget the run has used up, or None."""
    if budgets.max_evals is not None and stats.evaluations >= budgets.max_evals:
        return StopReason.max_evals
    if budgets.max_llm_calls is not None and stats.llm_calls >= budgets.max_llm_calls and stats.uses_llm:
        return StopReason.max_llm_calls
    if budgets.max_tokens is not None and stats.tokens >= budgets.max_tokens and stats.uses_llm:
        return StopReason.max_tokens
    if budgets.max_cost is not None and stats.cost >= budgets.max_cost and stats.uses_llm:
        return StopReason.max_cost
    if budgets.target_speedup is not None and (stats.best_speedup or 0.0) >= budgets.target_speedup:
        return StopReason.target_speedup
    if budgets.stagnation is not None and stats.since_improvement >= budgets.stagnation:
        return StopReason.stagnation
    if budgets.idle is not None and stats.idle >= budgets.idle:
        return StopReason.idle
    if budgets.wall_time_s is not None and stats.elapsed_s >= budgets.wall_time_s:
        return StopReason.wall_time
    if stats.infra_in_a_row >= INFRA_ERRORS_IN_A_ROW:
        return StopReason.evaluator_failed
    return None


def room_for_another(budgets: Budgets, stats: RunStats, in_flight: int) -> bool:
    """Whether one more child may be proposed: children in flight count as if each will be evaluated
    and make one LLM call, so the evaluation and call budgets are never overshot (tokens and cost can
    be, by the calls in flight)."""
    if budgets.max_evals is not None and stats.evaluations + in_flight >= budgets.max_evals:
        return False
    if stats.uses_llm and budgets.max_llm_calls is not None and stats.llm_calls + in_flight >= budgets.max_llm_calls:
        return False
    return spent(budgets, stats) is None
