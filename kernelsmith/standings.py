"""A leaderboard's standings read from the archive: each task's best kernel, fast_p per level and overall,
and the same tables as rich tables, Markdown, CSV and JSON."""

from __future__ import annotations

import csv
import io
import math
import re
from dataclasses import dataclass
from typing import Any

from rich.table import Table

from archive import Archive, Leaderboard
from evaluators.protocol import Backend, Environment, Status
from kernelsmith.metrics import P_VALUES, SuiteMetrics, TaskOutcome, level_metrics

TEXT_COLUMNS = ("scope", "task", "state", "best")
_LEVEL = re.compile(r"^level(\d+)/")
NOT_MEASURED = "not measured"
FAST_P_MEANING = (
    "fast_p: the share of all tasks whose best kernel is correct and strictly faster than p times the "
    "baseline (a kernel at exactly p x does not count; a task without a correct kernel counts as not "
    "fast). fast_0 is the correctness rate. Geometric and arithmetic mean speedups are over the tasks with "
    "a correct, timed kernel: their number is in brackets."
)
CORRECTNESS_ONLY = (
    "fast_0 is the share of all tasks whose best kernel is correct (a task without one counts as not correct). "
    "Speedups and fast_p for p > 0 are not measured: the CPU interpreter does not time kernels."
)
BASELINE_NAMES = {"eager": "eager PyTorch", "compile": "torch.compile"}


@dataclass(frozen=True)
class Standing:
    """One task of a leaderboard: the run that searched it and its best kernel."""

    label: str
    level: int | None
    state: str  # the run's status (finished, stopped, running), "not started" or "could not start"
    run_id: int | None
    results: int  # programs of the run with a result
    best_program_id: int | None
    best_status: str | None
    correct: bool
    speedup: float | None  # the best kernel's, over eager PyTorch
    speedup_compile: float | None  # the same kernel's, over torch.compile
    device: str | None
    error: str | None

    def outcome(self) -> TaskOutcome:
        return TaskOutcome(self.label, self.level, self.correct, self.speedup, self.speedup_compile)


@dataclass
class Standings:
    leaderboard: Leaderboard
    rows: list[Standing]
    environment: Environment | None  # of a best kernel's evaluation: the device, torch and triton

    @property
    def backend(self) -> str | None:
        return self.leaderboard.config.get("backend")

    @property
    def measured(self) -> bool:
        return self.backend is not None and self.backend != Backend.triton_interpret.value

    @property
    def compile_measured(self) -> bool:
        return self.measured and bool(self.leaderboard.config.get("compile_baseline"))

    @property
    def devices(self) -> list[str]:
        return sorted({row.device for row in self.rows if row.device})

    @property
    def finished(self) -> int:
        return sum(row.state == "finished" for row in self.rows)

    def metrics(self, baseline: str = "eager") -> list[SuiteMetrics]:
        measured = self.compile_measured if baseline == "compile" else self.measured
        return level_metrics([row.outcome() for row in self.rows], baseline, measured)

    def baselines(self) -> list[str]:
        return ["eager", "compile"] if self.compile_measured else ["eager"]


def read_standings(archive: Archive, leaderboard: Leaderboard | str) -> Standings:
    if isinstance(leaderboard, str):
        leaderboard = archive.leaderboards.get(leaderboard)
    rows = []
    environment = None
    for entry in leaderboard.entries:
        match = _LEVEL.match(entry.task_label)
        level = int(match.group(1)) if match else None
        if entry.run_id is None:
            state = "could not start" if entry.error else "not started"
            rows.append(Standing(entry.task_label, level, state, None, 0, None, None, False, None, None, None,
                                 entry.error))
            continue
        run = archive.get_run(entry.run_id)
        evaluated = archive.evaluated_programs(run)
        best = archive.best(run)
        program, evaluation = best if best is not None else (None, None)
        correct = evaluation is not None and evaluation.status == Status.ok
        if correct and evaluation is not None and environment is None:
            environment = evaluation.result.environment
        rows.append(Standing(
            label=entry.task_label, level=level, state=run.status.value, run_id=run.id, results=len(evaluated),
            best_program_id=program.id if program else None,
            best_status=evaluation.status.value if evaluation else None,
            correct=correct,
            speedup=_finite(evaluation.speedup) if evaluation else None,
            speedup_compile=_finite(evaluation.speedup_compile) if evaluation else None,
            device=evaluation.device if evaluation else None,
            error=entry.error,
        ))
    return Standings(leaderboard, rows, environment)


# -- words and numbers ------------------------------------------------------------------------


def percent(value: float | None) -> str:
    return NOT_MEASURED if value is None else f"{value:.1%}"


def times(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


def describe(standings: Standings) -> list[str]:
    """The lines that say what was measured, where, and how: the table is meaningless without them."""
    board = standings.leaderboard
    config = board.config
    models = config.get("models") or []
    search = f"LLM evolution ({', '.join(models)}) with parameter tuning" if models else \
        "parameter-only evolution (no LLM)"
    levels = config.get("levels")
    lines = [
        f"Suite {config.get('suite_name') or board.suite} ({board.suite})"
        + (f", level {', '.join(map(str, levels))}" if levels else "")
        + f": {len(standings.rows)} tasks, {standings.finished} finished. {search}; "
        f"budget {_evaluations(config.get('budget_per_task'))} per task; backend {standings.backend}"
        + (f" at size scale {config['scale']:g}" if config.get("scale") not in (None, 1, 1.0) else "") + ".",
    ]
    env = standings.environment
    if standings.devices:
        versions = ""
        if env is not None:
            versions = f" (torch {env.torch}, triton {env.triton})"
        lines.append(f"Device: {', '.join(standings.devices)}{versions}.")
        if len(standings.devices) > 1:
            lines.append("The best kernels were timed on different devices: their speedups do not compare.")
    if not standings.measured:
        lines.append("Speed was not measured (the CPU interpreter checks correctness only): "
                     "the tables show correctness; fast_p for p > 0 and speedups are not measured.")
    elif not standings.compile_measured:
        lines.append("torch.compile was not timed (compile baseline off): speedups are over eager PyTorch only.")
    return lines


def metric_title(standings: Standings, baseline: str) -> str:
    if not standings.measured:
        return "correctness (speed not measured)"
    return f"fast_p over {BASELINE_NAMES[baseline]}"


def metric_headers(standings: Standings) -> list[str]:
    if not standings.measured:
        return ["scope", "tasks", "correct", "fast_0 (correctness)"]
    return ["scope", "tasks", "correct", *(f"fast_{p:g}" for p in P_VALUES), "geomean speedup", "mean speedup"]


def metric_cells(row: SuiteMetrics) -> list[str]:
    cells = [row.scope, str(row.tasks), str(row.correct), percent(row.fast[0.0])]
    if not row.measured:
        return cells
    return [*cells, *(percent(row.fast[p]) for p in P_VALUES[1:]),
            *(f"{times(v)} ({row.timed})" if v is not None else "-" for v in (row.geomean_speedup, row.mean_speedup))]


def task_headers(standings: Standings) -> list[str]:
    headers = ["task", "state", "run", "results", "best"]
    if standings.measured:
        headers.append("over eager")
    if standings.compile_measured:
        headers.append("over torch.compile")
    return headers


def task_cells(row: Standing, standings: Standings) -> list[str]:
    if row.run_id is None:
        best = row.error or row.state
    elif row.best_program_id is None:
        best = "no result"
    else:
        best = f"#{row.best_program_id} {'correct' if row.correct else row.best_status}"
    cells = [row.label, row.state, str(row.run_id or "-"), str(row.results), best]
    if standings.measured:
        cells.append(times(row.speedup) if row.correct else "-")
    if standings.compile_measured:
        cells.append(times(row.speedup_compile) if row.correct else "-")
    return cells


# -- formats ----------------------------------------------------------------------------------


def rich_tables(standings: Standings) -> list[Table]:
    tables = []
    for baseline in standings.baselines():
        table = Table(title=metric_title(standings, baseline), title_justify="left")
        for header in metric_headers(standings):
            table.add_column(header, justify="left" if header == "scope" else "right")
        for row in standings.metrics(baseline):
            table.add_row(*metric_cells(row), style="bold" if row.scope == "all" else None)
        tables.append(table)
    tasks = Table(title="best kernel per task", title_justify="left")
    for header in task_headers(standings):
        tasks.add_column(header, justify="right" if header in ("run", "results") else "left")
    for row in standings.rows:
        tasks.add_row(*task_cells(row, standings))
    tables.insert(0, tasks)
    return tables


def markdown(standings: Standings, plot: str | None = None) -> str:
    """The leaderboard as Markdown; `plot` is the path of the speedup distribution PNG to show."""
    board = standings.leaderboard
    out = [f"# Leaderboard {board.name}", "", *(line + "  " for line in describe(standings)), ""]
    for baseline in standings.baselines():
        headers = metric_headers(standings)
        out += [f"## {metric_title(standings, baseline)}", "", _md_row(headers), _md_rule(headers)]
        out += [_md_row(metric_cells(row)) for row in standings.metrics(baseline)]
        out.append("")
    out += [FAST_P_MEANING if standings.measured else CORRECTNESS_ONLY, ""]
    if plot:
        out += [f"![{'best speedup per task' if standings.measured else 'correct tasks per level'}]({plot})", ""]
    headers = task_headers(standings)
    out += ["## Best kernel per task", "", _md_row(headers), _md_rule(headers)]
    out += [_md_row(task_cells(row, standings)) for row in standings.rows]
    out.append("")
    return "\n".join(out)


def csv_text(standings: Standings) -> str:
    """One row per task, numbers as numbers (empty when absent)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["task", "level", "state", "run_id", "results", "best_program_id", "best_status", "correct",
                     "speedup", "speedup_compile", "device", "error"])
    for row in standings.rows:
        writer.writerow([row.label, _blank(row.level), row.state, _blank(row.run_id), row.results,
                         _blank(row.best_program_id), _blank(row.best_status), int(row.correct),
                         _blank(row.speedup if row.correct else None),
                         _blank(row.speedup_compile if row.correct else None), _blank(row.device),
                         _blank(row.error)])
    return buffer.getvalue()


def standings_json(standings: Standings) -> dict[str, Any]:
    board = standings.leaderboard
    env = standings.environment
    return {
        "leaderboard": {"name": board.name, "suite": board.suite, "config": board.config,
                        "created_at": board.created_at.isoformat(), "updated_at": board.updated_at.isoformat()},
        "backend": standings.backend,
        "measured": standings.measured,
        "compile_measured": standings.compile_measured,
        "devices": standings.devices,
        "environment": env.model_dump(mode="json") if env is not None else None,
        "definitions": {"fast_p": FAST_P_MEANING, "p": list(P_VALUES)},
        "metrics": {
            baseline: [
                {"scope": m.scope, "tasks": m.tasks, "correct": m.correct, "timed": m.timed, "measured": m.measured,
                 "correctness": m.correctness, "fast_p": {f"{p:g}": m.fast[p] for p in P_VALUES},
                 "geomean_speedup": m.geomean_speedup, "mean_speedup": m.mean_speedup}
                for m in standings.metrics(baseline)
            ]
            for baseline in standings.baselines()
        },
        "tasks": [
            {"task": r.label, "level": r.level, "state": r.state, "run_id": r.run_id, "results": r.results,
             "best_program_id": r.best_program_id, "best_status": r.best_status, "correct": r.correct,
             "speedup": r.speedup if r.correct else None,
             "speedup_compile": r.speedup_compile if r.correct else None, "device": r.device, "error": r.error}
            for r in standings.rows
        ],
    }


def _md_row(cells: list[str]) -> str:
    return "| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |"


def _md_rule(headers: list[str]) -> str:
    return "|" + "|".join(" --- " if header in TEXT_COLUMNS else " ---: " for header in headers) + "|"


def _evaluations(count: object) -> str:
    return f"{count} evaluation{'' if count == 1 else 's'}" if count is not None else "unlimited evaluations"


def _blank(value: object) -> object:
    return "" if value is None else value


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None
