"""What /metrics reports: counters and histograms the scheduler keeps, in Prometheus text format."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from evaluators.scheduler import Scheduler


@dataclass
class Histogram:
    """Seconds, in cumulative buckets as Prometheus reads them."""

    bounds: tuple[float, ...] = (0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800)
    counts: list[int] = field(default_factory=list)
    total: float = 0.0
    count: int = 0

    def observe(self, value: float) -> None:
        if not self.counts:
            self.counts = [0] * len(self.bounds)
        for index, bound in enumerate(self.bounds):
            if value <= bound:
                self.counts[index] += 1
        self.total += value
        self.count += 1


@dataclass
class Tally:
    """The counts behind /metrics, kept by the scheduler."""

    evaluations: Counter[str] = field(default_factory=Counter)  # by result status, plus "cancelled"
    submissions: Counter[str] = field(default_factory=Counter)  # accepted, deduplicated, queue_full, refused
    duration: Histogram = field(default_factory=Histogram)  # a slot's time on one evaluation
    latency: Histogram = field(default_factory=Histogram)  # submit to result


def render_metrics(scheduler: Scheduler) -> str:
    """Queue depth, busy slots, evaluations by status and latency histograms, Prometheus text format."""
    lines: list[str] = []

    def family(name: str, kind: str, help_text: str) -> None:
        lines.extend([f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"])

    capacity = scheduler.capacity()
    family("kernelsmith_queue_depth", "gauge", "Evaluations waiting for a slot.")
    lines += [f'kernelsmith_queue_depth{{backend="{b}"}} {c["queued"]}' for b, c in capacity.items()]
    family("kernelsmith_slots", "gauge", "Worker slots, by backend and state.")
    for backend, c in capacity.items():
        lines += [f'kernelsmith_slots{{backend="{backend}",state="busy"}} {c["busy"]}',
                  f'kernelsmith_slots{{backend="{backend}",state="idle"}} {c["slots"] - c["busy"]}']
    family("kernelsmith_evaluations_total", "counter", "Finished evaluations, by result status (or cancelled).")
    for status, count in sorted(scheduler.tally.evaluations.items()):
        lines.append(f'kernelsmith_evaluations_total{{status="{status}"}} {count}')
    family("kernelsmith_submissions_total", "counter", "Submissions, by outcome.")
    for outcome, count in sorted(scheduler.tally.submissions.items()):
        lines.append(f'kernelsmith_submissions_total{{outcome="{outcome}"}} {count}')
    if scheduler.warm is not None:
        family("kernelsmith_warm_workers_total", "counter", "Warm pool: workers handed out pre-started or cold.")
        lines += [f'kernelsmith_warm_workers_total{{outcome="hit"}} {scheduler.warm.stats.hits}',
                  f'kernelsmith_warm_workers_total{{outcome="miss"}} {scheduler.warm.stats.misses}']
    for name, histogram, help_text in (
        ("kernelsmith_evaluation_seconds", scheduler.tally.duration, "Time a slot spent on one evaluation."),
        ("kernelsmith_latency_seconds", scheduler.tally.latency, "Time from submission to result."),
    ):
        family(name, "histogram", help_text)
        counts = histogram.counts or [0] * len(histogram.bounds)
        lines += [f'{name}_bucket{{le="{bound:g}"}} {count}' for bound, count in zip(histogram.bounds, counts, strict=True)]
        lines += [f'{name}_bucket{{le="+Inf"}} {histogram.count}', f"{name}_sum {histogram.total:.6f}",
                  f"{name}_count {histogram.count}"]
    return "\n".join(lines) + "\n"
