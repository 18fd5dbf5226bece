"""The report's figures as PNG bytes (matplotlib's object API, no pyplot state): best speedup over
evaluations, status breakdown, a run's lineage tree, and a leaderboard's speedup distribution."""

from __future__ import annotations

import io
import math
from collections import Counter
from typing import TYPE_CHECKING

from matplotlib.figure import Figure
from matplotlib.ticker import FixedLocator, FuncFormatter, NullFormatter

from evaluators.protocol import Status
from kernelsmith.history import FAILED_MUTATION, NOT_EVALUATED, RunHistory

if TYPE_CHECKING:
    from kernelsmith.standings import Standings

STATUS_COLORS = {
    Status.ok.value: "#2e9e44",
    Status.incorrect.value: "#d6452f",
    Status.compile_error.value: "#e89a1c",
    Status.runtime_error.value: "#9c2a1a",
    Status.timeout.value: "#8a4fbf",
    Status.rejected.value: "#222222",
    Status.infra_error.value: "#3a7bd5",
    FAILED_MUTATION: "#9a9a9a",
    NOT_EVALUATED: "#cfcfcf",
}
TICKS = (0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 1.5, 2, 3, 5, 10, 20, 50, 100)
LEVEL_COLORS = ("#3a7bd5", "#e89a1c", "#2e9e44", "#8a4fbf", "#d6452f")
DPI = 100


def png(figure: Figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI, bbox_inches="tight")
    return buffer.getvalue()


def speedup_over_evaluations(history: RunHistory) -> Figure:
    """The best correct speedup after each result; every correct result's own speedup as a dot. Without
    timing (the CPU interpreter), the number of correct programs found instead."""
    figure = Figure(figsize=(8, 3.6))
    axes = figure.subplots()
    numbers = [result.number for result in history.results]
    if history.measured:
        best = history.best_so_far()
        points = [(r.number, r.speedup) for r in history.results if r.status == Status.ok and _finite(r.speedup)]
        axes.step(numbers, [b if b is not None else math.nan for b in best], where="post",
                  color="#2e9e44", linewidth=2, label="best correct speedup so far")
        if points:
            axes.scatter(*zip(*points, strict=True), s=14, color="#3a7bd5", alpha=0.6, label="each correct result")
        axes.axhline(1.0, color="#888888", linestyle="--", linewidth=1, label="eager PyTorch (1x)")
        axes.set_ylabel("speedup over eager PyTorch")
        axes.legend(loc="lower right", fontsize=8)
    else:
        axes.step(numbers, history.correct_so_far(), where="post", color="#2e9e44", linewidth=2)
        axes.set_ylabel("correct programs found")
        axes.text(0.02, 0.92, "speed not measured (CPU interpreter): correctness only",
                  transform=axes.transAxes, fontsize=9, color="#666666")
    axes.set_xlabel("evaluation (in the order results arrived)")
    axes.set_title(f"run {history.run.id}: {history.run.task_name}", fontsize=10)
    axes.grid(alpha=0.3)
    if not numbers:
        axes.text(0.5, 0.5, "no results yet", transform=axes.transAxes, ha="center")
    return figure


def status_breakdown(outcomes: Counter[str]) -> Figure:
    """How many programs ended in each status (their latest result), failed mutations included."""
    ordered = sorted(outcomes.items(), key=lambda item: (-item[1], item[0]))
    figure = Figure(figsize=(6, 0.5 + 0.4 * max(1, len(ordered))))
    axes = figure.subplots()
    names = [name for name, _ in ordered]
    counts = [count for _, count in ordered]
    bars = axes.barh(names, counts, color=[STATUS_COLORS.get(name, "#777777") for name in names])
    axes.bar_label(bars, padding=3, fontsize=8)
    axes.invert_yaxis()
    axes.set_xlabel("programs")
    axes.set_xlim(0, max(counts, default=1) * 1.15 + 0.5)
    return figure


def lineage_tree(history: RunHistory) -> Figure:
    """Every program of the run by generation, linked to its parent; the lineage of the best drawn bold."""
    programs = history.programs
    figure = Figure(figsize=(8, min(12.0, 0.9 + 0.28 * max(1, len(programs)))))
    axes = figure.subplots()
    row = {program.id: index for index, program in enumerate(programs)}
    on_path = {step.program.id for step in history.lineage}
    for program in programs:
        parent = program.parent_id
        if parent in row:
            bold = program.id in on_path and parent in on_path
            axes.plot([programs[row[parent]].generation, program.generation], [row[parent], row[program.id]],
                      color="#2e9e44" if bold else "#bbbbbb", linewidth=2.5 if bold else 0.8, zorder=1)
    for program in programs:
        outcome = _outcome(history, program.id, program.metadata)
        axes.scatter([program.generation], [row[program.id]], s=70 if program.id in on_path else 25,
                     color=STATUS_COLORS.get(outcome, "#777777"), edgecolors="black" if program.id in on_path else "none",
                     zorder=2)
    for step in history.lineage:
        evaluation = step.evaluation
        label = f"#{step.program.id} {step.program.operator}"
        if evaluation is not None and evaluation.status == Status.ok and _finite(evaluation.speedup):
            label += f"  {evaluation.speedup:.2f}x"
        elif evaluation is not None:
            label += f"  {evaluation.status.value}"
        axes.annotate(label, (step.program.generation, row[step.program.id]), xytext=(8, -3),
                      textcoords="offset points", fontsize=8)
    axes.invert_yaxis()
    axes.set_xlabel("generation")
    axes.set_ylabel("program (in the order made)")
    axes.set_yticks([])
    top = max((p.generation for p in programs), default=0)
    axes.set_xlim(-0.5, top + 1.5)
    axes.set_xticks(range(top + 1))
    axes.set_title("lineage tree: the best program's ancestry in bold", fontsize=10)
    return figure


def speedup_distribution(standings: Standings) -> Figure:
    """Each task's best correct speedup over eager PyTorch, sorted, coloured by level (log scale); tasks
    without a correct kernel marked at the bottom. Without timing, the correctness rate of each level."""
    figure = Figure(figsize=(9, 3.8))
    axes = figure.subplots()
    levels = sorted({row.level for row in standings.rows}, key=lambda level: (level is None, level or 0))
    colors = {level: LEVEL_COLORS[index % len(LEVEL_COLORS)] for index, level in enumerate(levels)}
    if standings.measured:
        rows = sorted(standings.rows, key=lambda row: row.outcome().speedup_over("eager") or 0.0, reverse=True)
        speedups = [row.outcome().speedup_over("eager") for row in rows]
        timed = [s for s in speedups if s is not None]
        floor = min([*timed, 1.0]) / 2
        for index, (row, speedup) in enumerate(zip(rows, speedups, strict=True)):
            if speedup is not None:
                axes.bar(index, speedup - floor, bottom=floor, color=colors[row.level])
            else:
                axes.scatter([index], [floor * 1.15], marker="x", color="#d6452f", zorder=3)
        for p, style in ((1.0, "-"), (1.5, "--"), (2.0, ":")):
            axes.axhline(p, color="#555555", linestyle=style, linewidth=1)
        axes.set_yscale("log")
        axes.set_ylim(floor, max([*timed, 2.0]) * 1.3)
        axes.yaxis.set_major_locator(FixedLocator([v for v in TICKS if floor <= v <= max([*timed, 2.0]) * 1.3]))
        axes.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}x"))
        axes.yaxis.set_minor_formatter(NullFormatter())
        axes.set_ylabel("best speedup over eager PyTorch")
        axes.set_xticks(range(len(rows)))
        axes.set_xticklabels([row.label.split("/")[-1] for row in rows], rotation=90, fontsize=7)
        axes.set_xlim(-0.6, len(rows) - 0.4)
        axes.set_xlabel("task, fastest first (x: no correct kernel)")
        for level in levels:
            axes.bar([0], [0], color=colors[level], label=f"level {level}" if level is not None else "other")
        axes.legend(fontsize=8, loc="upper right")
    else:
        names, rates = [], []
        for level in levels:
            rows = [row for row in standings.rows if row.level == level]
            names.append(f"level {level}" if level is not None else "other")
            rates.append(sum(row.correct for row in rows) / len(rows))
        bars = axes.bar(names, rates, color=[colors[level] for level in levels])
        axes.bar_label(bars, labels=[f"{rate:.0%}" for rate in rates], padding=3, fontsize=9)
        axes.set_ylim(0, 1.15)
        axes.set_ylabel("tasks with a correct kernel")
        axes.set_title("speed not measured (CPU interpreter): correctness only", fontsize=10)
    return figure


def _outcome(history: RunHistory, program_id: int, metadata: dict) -> str:
    evaluation = history.latest.get(program_id)
    if evaluation is not None:
        return evaluation.status.value
    return FAILED_MUTATION if "attempt_error" in metadata else NOT_EVALUATED


def _finite(value: float | None) -> bool:
    return value is not None and math.isfinite(value)
