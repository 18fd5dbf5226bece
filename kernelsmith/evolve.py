"""The evolution loop's public API: `evolve()` runs (or resumes) one task's search to its budget.

    summary = await evolve(task, settings, archive, evaluator)          # a new run
    summary = await evolve(task, settings, archive, evaluator, resume=3)  # continue run 3

Callers: `kernelsmith evolve`, the leaderboard (once per task of a suite), and benchmarks that
swap the selection strategy (`selector=`). docs/evolve.md describes the loop and its guarantees.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from pydantic import ValidationError

from archive import Archive, ArchiveError, Evaluation, Lease, Program, Run, RunBusy, RunStatus
from archive.lease import STALE_AFTER_S
from archive.policy import Policy, PolicyConfig, Selection
from evaluators.protocol import Backend, Status
from kernelsmith.budget import RunStats, StopReason
from kernelsmith.config import ConfigError, Settings
from kernelsmith.mutators import NoOperator, OperatorMix
from kernelsmith.pipeline import Pipeline
from kernelsmith.tasks import CPU_SCALE, Task

if TYPE_CHECKING:
    from evaluators.client import Evaluator

# auto picks the first of these that the evaluator has slots for: a GPU when there is one
BACKEND_PREFERENCE = (Backend.triton_nvidia, Backend.maca_metax, Backend.triton_interpret)
# the run's lease is beaten this often: a few missed beats (a slow archive) are not taken for death
HEARTBEAT_S = STALE_AFTER_S / 4
BUSY_HINT = ("stop that process first; a run whose process died can be resumed at once on the same host, "
             f"or after {STALE_AFTER_S:.0f} s from another")


class EvolveError(Exception):
    """A run that cannot start as asked (no seed and no LLM, a run of another task...): the caller's to fix."""

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.hint = hint


class Selector(Protocol):
    """Chooses parents: the archive's Policy by default; benchmarks pass simpler strategies."""

    def select(self) -> Selection | None:
        """The next parent, its inspirations and island; None while no program has a usable result."""

    def observe(self, program: Program, evaluation: Evaluation) -> None:
        """Take in a stored result (called in the order results are committed)."""


# builds a run's selector from what the archive holds (empty for a new run, the history for a resumed one)
SelectorFactory = Callable[[Archive, Run], Selector]


def policy_selector(settings: Settings) -> SelectorFactory:
    """The default: the archive's elites + islands + diversity-grid Policy, configured by `settings.policy`."""
    try:
        config = PolicyConfig(**settings.policy)
    except ValidationError as error:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors())
        raise ConfigError(f"invalid configuration: policy: {problems}",
                          "docs/archive.md lists the selection policy's keys") from None
    return lambda archive, run: Policy.from_archive(archive, run, config)


class Interrupt:
    """Asks a running `evolve()` to stop. The first request lets the evaluations in flight finish and
    commits them; a second drops them (children already made are stored, to be evaluated on resume)."""

    def __init__(self) -> None:
        self.level = 0
        self._changed: asyncio.Event | None = None

    def request(self) -> None:
        self.level += 1
        if self._changed is not None:
            self._changed.set()

    async def wait_above(self, level: int) -> int:
        while self.level <= level:
            self._changed = asyncio.Event()
            await self._changed.wait()
        return self.level


@dataclass(frozen=True)
class RunSummary:
    """How a run ended. Counts cover all its sessions; `wall_s` is this session's."""

    run_id: int
    task_name: str
    status: RunStatus  # finished (a budget ended it) or stopped (interrupted, or the evaluator failed)
    stop_reason: StopReason
    stop_message: str  # the reason in words, with the evaluator's error when it failed
    evaluations: int  # evaluations run
    reused: int  # children that reused a stored result of an identical program
    failed_mutations: int  # children no program came of, each stored as an attempt with its error
    programs: int  # program rows of the run, attempts included
    best_program_id: int | None  # by the archive's fitness (an ok result beats every failure)
    best_status: Status | None
    best_speedup: float | None  # over eager PyTorch; None when not timed (the CPU interpreter)
    best_source: str | None  # the best program's source when it is correct; None when nothing is
    lineage: int  # programs from the run's first to the best, both included
    llm_calls: int
    tokens: int
    cost: float
    backend: str
    device: str | None
    measured: bool  # False on the CPU interpreter: correctness only
    wall_s: float

    @property
    def correct(self) -> bool:
        return self.best_source is not None


def default_scale(backend: str) -> float:
    """Task sizes for a backend: CPU_SCALE for the interpreter (minutes, not hours, per suite), else full."""
    return CPU_SCALE if backend == Backend.triton_interpret.value else 1.0


async def resolve_backend(evaluator: Evaluator, wanted: Backend | str) -> str:
    """The concrete backend a run uses: `wanted`, or for auto the first the evaluator has slots for."""
    wanted = Backend(wanted)
    candidates = BACKEND_PREFERENCE if wanted == Backend.auto else (wanted,)
    for backend in candidates:
        if await evaluator.capacity(backend.value) > 0:
            return backend.value
    if wanted == Backend.auto:
        raise EvolveError("the evaluator offers no worker slot for any backend",
                          "check that the evaluator service is up, or run without --evaluator")
    raise EvolveError(f"the evaluator has no slot for backend {wanted.value}",
                      "on a machine without a GPU use --backend triton-interpret (or auto); "
                      "elsewhere, point --evaluator at a service that serves it")


async def evolve(
    task: Task,
    settings: Settings,
    archive: Archive,
    evaluator: Evaluator,
    *,
    progress: Progress | None = None,
    selector: SelectorFactory | None = None,
    resume: int | None = None,
    interrupt: Interrupt | None = None,
    on_start: Callable[[], None] | None = None,
) -> RunSummary:
    """Run the search for `task` until a budget in `settings.budgets` is spent, or continue run `resume`.

    The task is evaluated at the size it was loaded with (`task.scale`). Every program, evaluation and
    LLM call is committed to `archive` as it happens, by this process alone: it holds the run's lease
    (archive/lease.py) from the run's creation or resumption to its end. Raises EvolveError when the run
    cannot start as asked (no seed kernel and no model, a resumed run of another task, a backend the
    evaluator lacks, a run another live process is evolving) or was taken over meanwhile, ConfigError for
    a model without an API key, ArchiveError when the archive fails. `on_start` is called once the run
    is this process's (a refused one says only why).
    """
    backend = await resolve_backend(evaluator, settings.backend)
    make_selector = selector or policy_selector(settings)
    llm = settings.llm_client()  # a model without its API key fails here, before anything is stored
    pipeline: Pipeline | None = None
    lease: Lease | None = None
    try:
        mix = OperatorMix.build(llm, settings.operators.model_dump())
        if not mix.enabled:
            raise EvolveError("every operator has weight 0 in the configuration",
                              "give operators.params (or an LLM operator, with a model) a weight above 0")
        if resume is None:
            check_first_program(task, settings)
        run, lease = _open_run(task, settings, archive, backend, resume)
        if on_start is not None:
            on_start()
        try:
            pipeline = Pipeline(task, settings, archive, evaluator, run, backend, llm=llm, mix=mix,
                                selector=make_selector(archive, run), progress=progress,
                                interrupt=interrupt or Interrupt(), resumed=resume is not None)
            await pipeline.prepare()
            stats, reason, message = await _holding(archive, lease, pipeline.run())
        except RunBusy as lost:  # another process has the run now: it is no longer this one's to mark
            raise EvolveError(str(lost), "resume it once that process has ended, if it should go on") from None
        except NoOperator as error:
            archive.set_run_status(run, RunStatus.stopped)
            raise EvolveError(str(error)) from None
        except BaseException:
            archive.set_run_status(run, RunStatus.stopped)
            raise
        summary = summarize(archive, run, stats, reason, message)
    finally:
        if pipeline is not None:
            await pipeline.aclose()
        elif llm is not None:
            await llm.aclose()
        if lease is not None:
            _release(archive, lease)
    if progress is not None:
        progress.finished(summary)
    return summary


async def _holding(
    archive: Archive, lease: Lease, search: Awaitable[tuple[RunStats, StopReason, str]]
) -> tuple[RunStats, StopReason, str]:
    """Await `search` while beating the run's lease. Should the lease be lost anyway (this process stalled
    past the stale limit and another took the run over), the search is cancelled, so it stores nothing
    more, and RunBusy says who has the run now."""
    searching = asyncio.ensure_future(search)
    try:
        while not searching.done():
            await asyncio.wait([searching], timeout=HEARTBEAT_S)
            if searching.done():
                break
            try:
                archive.heartbeat(lease)
            except RunBusy:
                raise  # taken over: the search stops below
            except ArchiveError:
                pass  # the archive failed this once: the next beat comes well before the lease goes stale
        return searching.result()
    finally:
        if not searching.done():
            searching.cancel()
            await asyncio.gather(searching, return_exceptions=True)


def check_first_program(task: Task, settings: Settings) -> None:
    """Raise EvolveError when a new run of `task` could make no first program: no seed kernel to start
    from and no model to write one."""
    if task.seed_source is not None or (settings.models and settings.operators.first_kernel > 0):
        return
    if settings.models:
        raise EvolveError(f"{task.label} has no seed kernel, and operators.first_kernel is 0: nothing can "
                          "write a first kernel", "give operators.first_kernel a weight above 0")
    raise EvolveError(
        f"{task.label} has no seed kernel, and parameter-only evolution (no model is configured) needs one "
        "to tune",
        f"put a seed kernel at {task.path.parent / 'seeds' / task.path.name}, or configure a model "
        "(--model NAME, with OPENAI_API_KEY set) to write a first kernel from the reference",
    )


def run_config(task: Task, settings: Settings, backend: str) -> dict:
    """What a run records about itself: enough to resume it without the task file or the config file."""
    return {
        "settings": settings.model_dump(mode="json"),
        "task": {"label": task.label, "name": task.name, "level": task.level, "path": str(task.path),
                 "scale": task.scale},
        "backend": backend,
    }


def task_of_run(run: Run) -> Task:
    """The task a run was made for, rebuilt from the run's stored reference (no file needed)."""
    stored = run.config.get("task", {})
    return Task(name=stored.get("name", run.task_name), level=stored.get("level"), problem_id=None,
                path=Path(stored.get("path", run.task_name)), source=run.reference_source,
                scale=float(stored.get("scale", 1.0)))


def _open_run(
    task: Task, settings: Settings, archive: Archive, backend: str, resume: int | None
) -> tuple[Run, Lease]:
    """The run to evolve, new or resumed, held by this process until it releases the lease."""
    if resume is None:
        run = archive.create_run(task.label, task.source, run_config(task, settings, backend), seed=settings.seed)
        return run, _claim(archive, run)  # at once: a run being made is not someone else's to resume
    try:
        run = archive.get_run(resume)
    except ArchiveError as error:
        held = ", ".join(str(r.id) for r in sorted(archive.list_runs(), key=lambda r: r.id)) or "none"
        raise EvolveError(str(error), f"runs in this archive: {held}") from None
    if run.task_name != task.label or run.reference_hash != hashlib.sha256(task.source.encode()).hexdigest():
        scale = run.config.get("task", {}).get("scale")
        raise EvolveError(
            f"run {run.id} is a run of {run.task_name}" + (f" at scale {scale:g}" if scale else "")
            + f", not of {task.label} at scale {task.scale:g} with this reference",
            "resume without naming the task, or with the same task file and --scale",
        )
    stored_backend = run.config.get("backend")
    if stored_backend and stored_backend != backend:
        raise EvolveError(f"run {run.id} evaluated its programs on {stored_backend}, this evaluator would use "
                          f"{backend}: their results would not compare",
                          f"resume with --backend {stored_backend}, or start a new run")
    lease = _claim(archive, run)  # before the run is touched: a process refused here changes nothing
    try:
        return archive.resume(run), lease
    except BaseException:
        _release(archive, lease)
        raise


def _claim(archive: Archive, run: Run) -> Lease:
    try:
        return archive.claim_run(run)
    except RunBusy as busy:
        raise EvolveError(str(busy), BUSY_HINT) from None


def _release(archive: Archive, lease: Lease) -> None:
    try:
        archive.release(lease)
    except ArchiveError:
        pass  # not to hide the error in flight: the lease lapses anyway once this process exits (or goes stale)


def summarize(archive: Archive, run: Run, stats: RunStats, reason: StopReason, message: str) -> RunSummary:
    status = RunStatus.finished if reason.finished else RunStatus.stopped
    archive.set_run_status(run, status)
    best = archive.best(run)
    program, evaluation = best if best is not None else (None, None)
    correct = evaluation is not None and evaluation.status == Status.ok
    return RunSummary(
        run_id=run.id,
        task_name=run.task_name,
        status=status,
        stop_reason=reason,
        stop_message=message,
        evaluations=stats.evaluations,
        reused=stats.reused,
        failed_mutations=stats.failed_mutations,
        programs=len(archive.programs(run)),
        best_program_id=program.id if program else None,
        best_status=evaluation.status if evaluation else None,
        best_speedup=evaluation.speedup if correct and evaluation else None,
        best_source=program.source if correct and program else None,
        lineage=len(archive.path_to_best(run)),
        llm_calls=stats.llm_calls,
        tokens=stats.tokens,
        cost=stats.cost,
        backend=stats.backend,
        device=stats.device,
        measured=stats.measured,
        wall_s=stats.elapsed_s,
    )


class Progress(Protocol):
    """What a live display is told; kernelsmith.progress.LiveProgress draws it with rich."""

    def started(self, stats: RunStats) -> None: ...

    def update(self, stats: RunStats) -> None: ...

    def finished(self, summary: RunSummary) -> None: ...
