"""The leaderboard driver: `evolve()` on every task of a suite under one set of settings, with one warm
evaluator shared by all tasks. Each task's run is recorded in the archive the moment it starts, so a rerun
skips the finished tasks, resumes an interrupted one, and starts the rest.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from archive import Archive, Leaderboard, RunStatus
from kernelsmith.budget import StopReason
from kernelsmith.config import Settings
from kernelsmith.evolve import EvolveError, Interrupt, RunSummary, default_scale, evolve, resolve_backend
from kernelsmith.params import BackendLimits
from kernelsmith.tasks import Task, TaskProblem, load_suite, shipped_suite

if TYPE_CHECKING:
    from evaluators.client import Evaluator
    from kernelsmith.budget import RunStats
    from kernelsmith.evolve import Progress

# what a rerun must share with the leaderboard it continues, or its results would not compare
FINGERPRINT = ("levels", "budget_per_task", "backend", "scale", "compile_baseline", "models", "trials",
               "repetitions")


class LeaderboardError(Exception):
    """A leaderboard that cannot run as asked: the message says what and where, the hint what to do."""

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.hint = hint


@dataclass(frozen=True)
class Plan:
    """What to run: a suite (path as given; None is the shipped one), its levels, the settings (the
    evaluation budget per task is `settings.budgets.max_evals`), and the name (None: derived)."""

    suite: str | None
    levels: tuple[int, ...]
    settings: Settings
    name: str | None = None


@dataclass
class TaskEvent:
    """What the driver tells its caller about one task: skipped, starting, or done."""

    label: str
    index: int  # 1-based, in suite order
    total: int
    kind: str  # "skipped" (finished before), "starting", "resuming", "done", "could not start"
    summary: RunSummary | None = None
    message: str = ""


@dataclass
class Session:
    """How one invocation of the leaderboard went."""

    leaderboard: Leaderboard
    summaries: list[RunSummary] = field(default_factory=list)
    skipped: int = 0
    problems: list[TaskProblem] = field(default_factory=list)  # files of the suite that did not load
    stopped: str | None = None  # why it stopped before the last task, if it did


def suite_name(suite: str | None) -> str:
    if suite is None:
        return "kernelsmith"
    path = Path(suite)
    if path.is_dir():
        return path.resolve().name
    return path.stem.replace("*", "") or "suite"


def default_name(plan: Plan, backend: str, scale: float) -> str:
    """Same suite, levels, backend, budget, scale and models: same name, so a rerun finds its leaderboard."""
    parts = [suite_name(plan.suite)]
    if plan.levels:
        parts.append("level" + "+".join(map(str, sorted(plan.levels))))
    parts += [backend, f"{plan.settings.budgets.max_evals}evals"]
    if scale != default_scale(backend):
        parts.append(f"scale{scale:g}")
    parts += [model.name.replace("/", "_") for model in plan.settings.models]
    return "-".join(parts)


def leaderboard_config(plan: Plan, suite: Path, backend: str, scale: float) -> dict[str, Any]:
    settings = plan.settings
    return {
        "suite": str(suite),
        "suite_name": suite_name(plan.suite),
        "levels": sorted(plan.levels),
        "budget_per_task": settings.budgets.max_evals,
        "backend": backend,
        "scale": scale,
        # the CPU interpreter times nothing, so whether torch.compile would have been timed makes no difference
        "compile_baseline": settings.evaluation.compile_baseline and BackendLimits.for_backend(backend).measures_time,
        "models": [model.name for model in settings.models],
        "trials": settings.evaluation.trials,
        "repetitions": settings.evaluation.repetitions,
        # what a rerun under --name starts from; where the archive is and who evaluates are not settings of it
        "settings": settings.model_dump(mode="json", exclude={"db", "evaluators"}),
    }


async def run_leaderboard(
    plan: Plan,
    archive: Archive,
    evaluator: Evaluator,
    *,
    progress: Callable[[Task], Progress | None] | None = None,
    on_event: Callable[[TaskEvent], None] | None = None,
    interrupt: Interrupt | None = None,
) -> Session:
    """Search every task of the plan's suite that is not finished yet, in suite order.

    Raises LeaderboardError when the suite has no task or the leaderboard exists with other settings;
    EvolveError, ConfigError and ArchiveError from the search pass through (what ran is committed).
    A task that cannot start (no seed kernel and no model) is recorded with its reason and skipped.
    """
    interrupt = interrupt or Interrupt()
    tell = on_event or (lambda event: None)
    backend = await resolve_backend(evaluator, plan.settings.backend)
    scale = plan.settings.scale or default_scale(backend)
    where = Path(plan.suite) if plan.suite is not None else shipped_suite()
    tasks, problems = _load(where, plan.levels, scale)
    name = plan.name or default_name(plan, backend, scale)
    config = leaderboard_config(plan, where.resolve() if where.exists() else where, backend, scale)
    board = _open(archive, name, [task.label for task in tasks], config)
    session = Session(board, problems=problems)
    by_label = {task.label: task for task in tasks}
    entries = [entry for entry in board.entries if entry.task_label in by_label]
    for index, entry in enumerate(entries, start=1):
        task = by_label[entry.task_label]
        resume = None
        if entry.run_id is not None:
            run = archive.get_run(entry.run_id)
            if run.status == RunStatus.finished:
                session.skipped += 1
                tell(TaskEvent(task.label, index, len(entries), "skipped", message=f"run {run.id} finished before"))
                continue
            resume = run.id
        if interrupt.level > 0:
            session.stopped = "interrupted"
            break
        tell(TaskEvent(task.label, index, len(entries), "resuming" if resume else "starting",
                       message=f"run {resume}" if resume else ""))
        recorder = _Membership(archive, board, task.label, progress(task) if progress else None)
        try:
            summary = await evolve(task, plan.settings, archive, evaluator, progress=recorder, resume=resume,
                                   interrupt=interrupt)
        except EvolveError as error:
            archive.leaderboards.record(board, task.label, error=str(error))
            tell(TaskEvent(task.label, index, len(entries), "could not start",
                           message=str(error) + (f" ({error.hint})" if error.hint else "")))
            continue
        session.summaries.append(summary)
        tell(TaskEvent(task.label, index, len(entries), "done", summary=summary))
        if summary.stop_reason == StopReason.interrupted:
            session.stopped = "interrupted"
            break
        if summary.stop_reason == StopReason.evaluator_failed:
            session.stopped = f"the evaluator failed on {task.label}: {summary.stop_message}"
            break
    session.leaderboard = archive.leaderboards.get(name)
    return session


def _load(where: Path, levels: tuple[int, ...], scale: float) -> tuple[list[Task], list[TaskProblem]]:
    from kernelsmith.tasks import SuiteNotFound

    try:
        suite = load_suite(where, scale=scale)
    except SuiteNotFound as error:
        raise LeaderboardError(str(error), "pass a folder of task files or a KernelBench checkout") from None
    tasks = [task for task in suite.tasks if not levels or task.level in levels]
    if not tasks:
        found = sorted({t.level for t in suite.tasks if t.level is not None})
        raise LeaderboardError(
            f"no task in {where}" + (f" at level {', '.join(map(str, levels))}" if levels else ""),
            f"its levels are {', '.join(map(str, found))}" if found else "`kernelsmith tasks SUITE` lists a suite",
        )
    labels = [task.label for task in tasks]
    repeated = sorted({label for label in labels if labels.count(label) > 1})
    if repeated:
        raise LeaderboardError(f"the suite {where} has several tasks labelled {', '.join(repeated)}",
                               "a leaderboard needs one task per label: rename the files or pass --level")
    return tasks, list(suite.problems)


def _open(archive: Archive, name: str, labels: list[str], config: dict[str, Any]) -> Leaderboard:
    board = archive.leaderboards.find(name)
    if board is None:
        return archive.leaderboards.create(name, config["suite"], labels, config)
    differences = [
        f"{key}: {board.config.get(key)!r} before, {config[key]!r} now"
        for key in FINGERPRINT
        if board.config.get(key) != config[key]
    ]
    if differences:
        raise LeaderboardError(
            f"leaderboard {name!r} was started with other settings ({'; '.join(differences)}); its results "
            "would not compare",
            "rerun with the same settings to continue it, or give --name for a new leaderboard",
        )
    return archive.leaderboards.add_tasks(board, labels)


class _Membership:
    """Records a task's run in the leaderboard as soon as the run exists, then passes events on."""

    def __init__(self, archive: Archive, board: Leaderboard, label: str, inner: Progress | None) -> None:
        self.archive, self.board, self.label, self.inner = archive, board, label, inner

    def started(self, stats: RunStats) -> None:
        entry = self.board.entry(self.label)
        if entry is None or entry.run_id != stats.run_id or entry.error is not None:
            self.archive.leaderboards.record(self.board, self.label, run=stats.run_id)
        if self.inner is not None:
            self.inner.started(stats)

    def update(self, stats: RunStats) -> None:
        if self.inner is not None:
            self.inner.update(stats)

    def finished(self, summary: RunSummary) -> None:
        if self.inner is not None:
            self.inner.finished(summary)
