"""Suite metrics over each task's best kernel: fast_p, the correctness rate, and mean speedups.

fast_p (KernelBench's) is the share of ALL tasks whose best kernel is correct and strictly faster than
p times the baseline: speedup > p, so a kernel at exactly p x does not count. A task without a correct
kernel counts in the denominator, never in the numerator; fast_0 is the correctness rate. The geometric
and arithmetic mean speedups are taken over the correct tasks with a measured speedup only.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

P_VALUES = (0.0, 1.0, 1.5, 2.0)
BASELINES = ("eager", "compile")  # eager PyTorch, and torch.compile of the reference


@dataclass(frozen=True)
class TaskOutcome:
    """What a search achieved on one task: its best kernel's correctness and speedups."""

    label: str
    level: int | None
    correct: bool
    speedup: float | None = None  # eager time / kernel time; None when not timed
    speedup_compile: float | None = None  # torch.compile time / kernel time; None when not timed

    def speedup_over(self, baseline: str) -> float | None:
        """The speedup of a correct kernel over `baseline`; None when incorrect or not measured."""
        value = {"eager": self.speedup, "compile": self.speedup_compile}[_checked(baseline)]
        if not self.correct or value is None or not math.isfinite(value) or value <= 0:
            return None
        return value


def fast_p(outcomes: Sequence[TaskOutcome], p: float, baseline: str = "eager", measured: bool = True) -> float | None:
    """The share of all `outcomes` that are correct with a speedup over `baseline` above `p`.

    None when there are no tasks, or when p > 0 and speed was not measured (`measured` False: the CPU
    interpreter, or a baseline that was not timed). A correct kernel without a speedup counts for p = 0 only.
    """
    if p < 0:
        raise ValueError(f"fast_p needs p >= 0, got {p}")
    if not outcomes:
        return None
    if p == 0:
        return sum(outcome.correct for outcome in outcomes) / len(outcomes)
    if not measured:
        return None
    faster = 0
    for outcome in outcomes:
        speedup = outcome.speedup_over(baseline)
        faster += speedup is not None and speedup > p
    return faster / len(outcomes)


def geometric_mean(values: Iterable[float]) -> float | None:
    values = list(values)
    if not values:
        return None
    return math.exp(sum(math.log(value) for value in values) / len(values))


def arithmetic_mean(values: Iterable[float]) -> float | None:
    values = list(values)
    return sum(values) / len(values) if values else None


@dataclass(frozen=True)
class SuiteMetrics:
    """fast_p and mean speedups of a group of tasks (one level, or all) over one baseline."""

    scope: str  # "level 1", "other" (tasks without a level), or "all"
    baseline: str
    measured: bool
    tasks: int
    correct: int
    timed: int  # correct tasks with a speedup over the baseline: the means are over these
    fast: dict[float, float | None]  # p -> fast_p, for P_VALUES
    geomean_speedup: float | None
    mean_speedup: float | None

    @property
    def correctness(self) -> float | None:
        return self.fast[0.0]


def suite_metrics(
    outcomes: Sequence[TaskOutcome], scope: str = "all", baseline: str = "eager", measured: bool = True
) -> SuiteMetrics:
    speedups = [s for s in (o.speedup_over(baseline) for o in outcomes) if s is not None] if measured else []
    return SuiteMetrics(
        scope=scope,
        baseline=_checked(baseline),
        measured=measured,
        tasks=len(outcomes),
        correct=sum(outcome.correct for outcome in outcomes),
        timed=len(speedups),
        fast={p: fast_p(outcomes, p, baseline, measured) for p in P_VALUES},
        geomean_speedup=geometric_mean(speedups),
        mean_speedup=arithmetic_mean(speedups),
    )


def level_metrics(
    outcomes: Sequence[TaskOutcome], baseline: str = "eager", measured: bool = True
) -> list[SuiteMetrics]:
    """One row per level (in order; tasks without a level last, as "other"), then "all"."""
    levels = sorted({o.level for o in outcomes}, key=lambda level: (level is None, level or 0))
    rows = [
        suite_metrics([o for o in outcomes if o.level == level],
                      f"level {level}" if level is not None else "other", baseline, measured)
        for level in levels
    ]
    return [*rows, suite_metrics(outcomes, "all", baseline, measured)]


def _checked(baseline: str) -> str:
    if baseline not in BASELINES:
        raise ValueError(f"unknown baseline {baseline!r}; known: {', '.join(BASELINES)}")
    return baseline
