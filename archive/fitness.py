"""How programs compare: an ok result beats every failure, a faster ok beats a slower one, a failure
that got further (evaluators.protocol.STAGE_ORDER) beats one that stopped earlier."""

from __future__ import annotations

import math
from dataclasses import dataclass

from evaluators.protocol import STAGE_ORDER, Stage, Status


@dataclass(frozen=True)
class Fitness:
    status: Status
    stage: Stage
    speedup: float | None  # None where the backend gives no timing (the CPU interpreter)

    @property
    def ok(self) -> bool:
        return self.status == Status.ok

    def key(self) -> tuple[int, float]:
        """Larger is better. An ok result without timing ranks below every timed ok result."""
        if self.ok:
            speedup = self.speedup if self.speedup is not None and math.isfinite(self.speedup) else -math.inf
            return (1, speedup)
        return (0, float(STAGE_ORDER[self.stage]))


def usable(status: Status) -> bool:
    """An infra_error is the evaluator's fault: it says nothing about the candidate and is never ranked."""
    return status != Status.infra_error


def rank_key(program_id: int, fitness: Fitness) -> tuple[int, float, int]:
    """Sort key, larger first; equal fitness goes to the older program (lower id), so ties are deterministic."""
    return (*fitness.key(), -program_id)
