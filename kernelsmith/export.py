"""Training steps from evolution trajectories: each parent program turned into a correct child, labelled.

`find_steps` reads an archive's runs, labels every parent-to-child step (improvement, repair, untimed),
keeps those the filters allow, drops repeats and splits the tasks into train and validation;
export_sft and export_rl write the kept steps as JSONL. docs/export.md describes the rules.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field, replace
from enum import Enum
from typing import TYPE_CHECKING, Any

from evaluators.protocol import Status

if TYPE_CHECKING:  # the archive (SQLAlchemy) loads when an export runs, not with every command
    from archive import Archive, Evaluation, LlmCall, Program, Run


class ExportError(ValueError):
    """Filters that name nothing in the archive (an unknown run, a task no run has), or a bad setting."""


class Category(str, Enum):
    improvement = "improvement"  # correct parent -> correct child, measured faster by at least min_gain
    repair = "repair"  # failing parent -> correct child
    untimed = "untimed"  # correct parent -> correct child, speed not measured (the CPU interpreter)


DEFAULT_CATEGORIES = frozenset({Category.improvement, Category.repair})
DEFAULT_MIN_GAIN = 1.05


@dataclass(frozen=True)
class StepFilter:
    """Which steps to keep; an empty set means no restriction on that field."""

    min_gain: float = DEFAULT_MIN_GAIN  # child speedup / parent speedup, for improvements
    categories: frozenset[Category] = DEFAULT_CATEGORIES
    backends: frozenset[str] = frozenset()
    tasks: frozenset[str] = frozenset()
    runs: frozenset[int] = frozenset()
    operators: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        if not self.min_gain > 1.0:
            raise ExportError(f"the minimum gain must be above 1 (a child faster than its parent), "
                              f"got {self.min_gain:g}")


@dataclass(frozen=True)
class Scored:
    """A program with its latest usable evaluation (None when it has none)."""

    program: Program
    evaluation: Evaluation | None


@dataclass(frozen=True)
class Step:
    """One parent turned into one correct child by one mutation."""

    run: Run
    parent: Scored
    child: Scored
    category: Category
    gain: float | None  # child speedup / parent speedup; None for repairs and untimed steps
    inspirations: tuple[Scored, ...]  # the programs the mutation was shown beside the parent
    llm_call: LlmCall | None  # the call whose reply became the child; None for parameter tuning
    split: str = "train"

    @property
    def task(self) -> str:
        return self.run.task_name

    @property
    def parent_evaluation(self) -> Evaluation:
        assert self.parent.evaluation is not None
        return self.parent.evaluation

    @property
    def child_evaluation(self) -> Evaluation:
        assert self.child.evaluation is not None
        return self.child.evaluation

    @property
    def key(self) -> tuple[str, str, str]:
        """Two steps with this key are the same step (comments and layout do not count)."""
        return (self.task, self.parent.program.normalized_hash, self.child.program.normalized_hash)

    def metadata(self) -> dict[str, Any]:
        """The fields every exported record carries, with the same keys and types in every record."""
        parent, child = self.parent_evaluation, self.child_evaluation
        return {
            "task": self.task,
            "run_id": self.run.id,
            "parent_id": self.parent.program.id,
            "child_id": self.child.program.id,
            "category": self.category.value,
            "gain": self.gain,
            "parent_status": parent.status.value,
            "parent_speedup": parent.speedup,
            "child_speedup": child.speedup,
            "operator": self.child.program.operator,
            "model": self.child.program.model,
            "generation": self.child.program.generation,
            "backend": child.backend,
            "device": child.device,
            "llm_call_id": self.llm_call.id if self.llm_call is not None else None,
            "split": self.split,
        }


@dataclass
class StepSelection:
    """The kept steps in archive order (run, then child), and why the others were left out."""

    steps: list[Step]
    skipped: Counter[str] = field(default_factory=Counter)
    validation_share: float = 0.0
    validation_tasks: frozenset[str] = frozenset()

    @property
    def tasks(self) -> list[str]:
        return sorted({step.task for step in self.steps})

    def split(self, name: str) -> list[Step]:
        return [step for step in self.steps if step.split == name]


def label(parent: Evaluation, child: Evaluation, min_gain: float) -> tuple[Category | None, float | None, str]:
    """A step's category and gain from its two results, or (None, gain, why it is not training data)."""
    if child.status != Status.ok:
        return None, None, "child not correct"
    if parent.status != Status.ok:
        return Category.repair, None, ""
    if not parent.speedup or child.speedup is None or parent.device != child.device:
        return Category.untimed, None, ""
    gain = child.speedup / parent.speedup
    if gain < min_gain:
        return None, gain, "gain below the minimum"
    return Category.improvement, gain, ""


def find_steps(db: Archive, filters: StepFilter | None = None, *, validation: float = 0.0,
               seed: int = 0) -> StepSelection:
    """The steps of every run of `db` that pass `filters`, each once, with tasks split train/validation.

    `validation` is the share of tasks (not of steps) held out; `seed` makes the split reproducible.
    """
    filters = filters or StepFilter()
    runs = _selected_runs(db, filters)
    selection = StepSelection(steps=[], validation_share=validation)
    seen: set[tuple[str, str, str]] = set()
    for run in runs:
        for step in _run_steps(db, run, filters, selection.skipped):
            if step.key in seen:
                selection.skipped["repeat of an earlier step"] += 1
                continue
            seen.add(step.key)
            selection.steps.append(step)
    held_out = validation_tasks(selection.tasks, validation, seed)
    selection.validation_tasks = held_out
    selection.steps = [
        replace(step, split="validation" if step.task in held_out else "train") for step in selection.steps
    ]
    return selection


def validation_tasks(tasks: list[str], share: float, seed: int) -> frozenset[str]:
    """round(share * tasks) tasks held out, drawn by `seed`; at least one and never all when share > 0
    and there are two tasks or more (with one task there is nothing to hold out without losing it all)."""
    if not 0.0 <= share < 1.0:
        raise ExportError(f"the validation share must be in [0, 1), got {share:g}")
    if share == 0.0 or len(tasks) < 2:
        return frozenset()
    count = min(len(tasks) - 1, max(1, round(share * len(tasks))))
    order = sorted(tasks)
    random.Random(seed).shuffle(order)
    return frozenset(order[:count])


def _selected_runs(db: Archive, filters: StepFilter) -> list[Run]:
    runs = sorted(db.list_runs(), key=lambda run: run.id)
    unknown_runs = filters.runs - {run.id for run in runs}
    if unknown_runs:
        raise ExportError(f"no run {', '.join(map(str, sorted(unknown_runs)))} in the archive at {db.where} "
                          f"(its runs: {_listed([str(run.id) for run in runs])})")
    if filters.runs:
        runs = [run for run in runs if run.id in filters.runs]
    if filters.tasks:
        names = {run.id: _task_names(run) for run in runs}
        unknown_tasks = filters.tasks - set().union(*names.values())
        if unknown_tasks:
            known = sorted({run.task_name for run in runs})
            raise ExportError(f"no run of task {', '.join(sorted(unknown_tasks))} in the archive at {db.where}"
                              f"{' among the runs asked for' if filters.runs else ''} "
                              f"(its tasks: {_listed(known)})")
        runs = [run for run in runs if names[run.id] & filters.tasks]
    return runs


def _task_names(run: Run) -> set[str]:
    """A run answers to its task's label (level1/23_Softmax) and to the task's bare name (23_Softmax)."""
    stored = run.config.get("task") if isinstance(run.config, dict) else None
    name = stored.get("name") if isinstance(stored, dict) else None
    return {run.task_name, run.task_name.rsplit("/", 1)[-1]} | ({name} if isinstance(name, str) else set())


def _listed(items: list[str]) -> str:
    if not items:
        return "none"
    return ", ".join(items[:20]) + (f" and {len(items) - 20} more" if len(items) > 20 else "")


def _run_steps(db: Archive, run: Run, filters: StepFilter, skipped: Counter[str]) -> list[Step]:
    programs = {program.id: program for program in db.programs(run)}
    latest = {program.id: evaluation for program, evaluation in db.evaluated_programs(run)}
    made_by: dict[int, LlmCall] = {}
    for call in db.llm_calls(run):  # oldest first: the last good call of a program is the one it came from
        if call.program_id is not None and call.error is None:
            made_by[call.program_id] = call
    steps = []
    for child in programs.values():
        if child.parent_id is None:
            continue  # a seed or a first kernel: no parent to learn a revision from
        if "attempt_error" in child.metadata:
            skipped["mutation made no program"] += 1
            continue
        parent = programs[child.parent_id]
        parent_evaluation, child_evaluation = latest.get(parent.id), latest.get(child.id)
        if parent_evaluation is None or child_evaluation is None:
            skipped["not evaluated"] += 1
            continue
        if child.normalized_hash == parent.normalized_hash:
            skipped["child repeats its parent"] += 1
            continue
        category, gain, why = label(parent_evaluation, child_evaluation, filters.min_gain)
        if category is None:
            skipped[why] += 1
            continue
        if filters.categories and category not in filters.categories:
            skipped[f"{category.value} (category not asked for)"] += 1
            continue
        if filters.backends and child_evaluation.backend not in filters.backends:
            skipped["backend not asked for"] += 1
            continue
        if filters.operators and child.operator not in filters.operators:
            skipped["operator not asked for"] += 1
            continue
        steps.append(Step(
            run=run,
            parent=Scored(parent, parent_evaluation),
            child=Scored(child, child_evaluation),
            category=category,
            gain=gain,
            inspirations=tuple(Scored(programs[i], latest.get(i)) for i in child.inspiration_ids if i in programs),
            llm_call=made_by.get(child.id),
        ))
    return steps
