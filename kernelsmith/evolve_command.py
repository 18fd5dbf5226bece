"""`kernelsmith evolve TASK`: search for a faster kernel, live, and write the best one to a file.

Exit codes: 0 when a correct kernel was found, 1 when none was, 2 for misuse (no such task, a bad
flag or configuration, no seed kernel and no model, a run of another task).
"""

from __future__ import annotations

import asyncio
import difflib
import os
import re
import signal
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from evaluators.protocol import Backend
from kernelsmith.cli import app
from kernelsmith.config import ConfigError, Settings, load_settings
from kernelsmith.console import EXIT_OK, EXIT_VERDICT, console, err_console, fail

if TYPE_CHECKING:
    from archive import Archive
    from evaluators.client import Evaluator
    from kernelsmith.evolve import Interrupt, RunSummary
    from kernelsmith.tasks import Task

CPU_SCALE = 0.005  # kernelsmith.tasks.CPU_SCALE, repeated so that other commands start without the loop's imports
BEST_FOLDER = Path("runs")  # where best kernels go unless --out says otherwise (ignored by git)


@app.command("evolve")
def evolve_command(
    task: str | None = typer.Argument(
        None, help="a task file, or a shipped task's label or name (level1/13_Softmax, Softmax); "
                   "optional with --resume"),
    config: Path | None = typer.Option(None, "--config", "-c", help="YAML file (default: ./kernelsmith.yaml)"),
    db: str | None = typer.Option(None, "--db", help="archive path or SQLAlchemy URL (default: ./kernelsmith.db)"),
    max_evals: int | None = typer.Option(None, "--max-evals", min=1, help="evaluations to run"),
    model: str | None = typer.Option(None, "--model", help="use only this model (none: parameter tuning only)"),
    base_url: str | None = typer.Option(None, "--base-url", help="OpenAI-compatible endpoint for every model"),
    backend: Backend | None = typer.Option(None, "--backend", "-b", help="where candidates are evaluated"),
    seed: int | None = typer.Option(None, "--seed", help="same seed and same LLM replies, same run"),
    resume: int | None = typer.Option(None, "--resume", help="continue this run of the archive"),
    evaluator: list[str] = typer.Option([], "--evaluator", help="evaluator service URL (repeatable; "
                                        "none: evaluate here)"),
    scale: float | None = typer.Option(None, "--scale", help=f"task size scale in (0, 1] (default: "
                                       f"{CPU_SCALE:g} on the CPU interpreter, 1 on GPUs)"),
    out: Path | None = typer.Option(None, "--out", "-o", help="where to write the best kernel "
                                    "(default: runs/<task>-run<id>.py)"),
    max_cost: float | None = typer.Option(None, "--max-cost", help="US dollars of LLM calls"),
    wall_time: float | None = typer.Option(None, "--wall-time", help="seconds"),
    target_speedup: float | None = typer.Option(None, "--target-speedup", help="stop at this speedup"),
    stagnation: int | None = typer.Option(None, "--stagnation", help="stop after N evaluations without progress"),
    trials: int | None = typer.Option(None, "--trials", help="correctness trials per candidate"),
    repetitions: int | None = typer.Option(None, "--repetitions", help="timed repetitions per candidate (GPU)"),
    proposals: int | None = typer.Option(None, "--proposals", help="children made at once"),
) -> None:
    """Evolve a faster, verified Triton kernel for a task; every step is stored in the archive."""
    import archive
    from kernelsmith.evolve import EvolveError, check_first_program, task_of_run
    from kernelsmith.progress import summary_table

    flags = {
        "--model": model, "--base-url": base_url, "--db": db, "--backend": backend.value if backend else None,
        "--seed": seed, "--evaluator": evaluator, "--max-evals": max_evals, "--max-cost": max_cost,
        "--wall-time": wall_time, "--target-speedup": target_speedup, "--stagnation": stagnation,
        "--scale": scale, "--trials": trials, "--repetitions": repetitions, "--proposals": proposals,
    }
    if task is None and resume is None:
        fail("name a task (a file, or a shipped task such as level1/13_Softmax), or --resume RUN",
             "`kernelsmith tasks` lists the shipped suite")
    try:
        settings = load_settings(config, flags).settings
        store = archive.open(settings.db)
    except ConfigError as error:
        fail(str(error), error.hint)
    except archive.ArchiveError as error:
        fail(str(error))
    try:
        named = resolve_task(task, 1.0) if task is not None else None  # a wrong name is told before anything starts
        from_run = False
        if resume is not None:
            run = _run_to_resume(store, resume)
            # a resumed run keeps its own settings; only the environment and this command's flags change them
            settings = load_settings(flags=flags, base=(f"run {run.id}", run.config.get("settings", {}))).settings
            settings = settings.model_copy(update={"db": store.where})
            from_run = named is None
            named = named or task_of_run(run)
        elif named is not None:
            check_first_program(named, settings)
        settings.model_specs()  # a model without its API key: say so before anything starts
        assert named is not None
        summary = asyncio.run(_evolve(named, from_run, settings, store, resume))
    except ConfigError as error:
        fail(str(error), error.hint)
    except EvolveError as error:
        fail(str(error), error.hint)
    except KeyboardInterrupt:  # before the run's own handler was installed, or after it was removed
        fail("interrupted before the run started or after it ended; what was stored stays stored", code=EXIT_VERDICT)
    finally:
        store.close()
    written = _write_best(summary, out)
    console.print(summary_table(summary, written))
    raise typer.Exit(EXIT_OK if summary.correct else EXIT_VERDICT)


async def _evolve(named: Task, from_run: bool, settings: Settings, store: Archive, resume: int | None) -> RunSummary:
    """`named` is the task file at full size, or the resumed run's own task (`from_run`); the scale of
    a task file is chosen once the backend is known."""
    from evaluators.client import open_evaluator
    from kernelsmith.evolve import EvolveError, Interrupt, default_scale, evolve, resolve_backend
    from kernelsmith.progress import LiveProgress
    from kernelsmith.tasks import load_task

    evaluator = open_evaluator(settings.evaluators) if settings.evaluators else local_evaluator(settings)
    progress = LiveProgress(console)
    interrupt = Interrupt()
    loop = asyncio.get_running_loop()
    try:
        backend = await resolve_backend(evaluator, settings.backend)
        if from_run:  # the run's own reference, at the size it was made with
            task = named
            if settings.scale is not None and settings.scale != task.scale:
                raise EvolveError(f"run {resume} evaluates its task at scale {task.scale:g}, not {settings.scale:g}",
                                  "resume without --scale")
        else:
            task = load_task(named.path, settings.scale or default_scale(backend))
        for number in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(number, _interrupted, interrupt)
        return await evolve(task, settings, store, evaluator, progress=progress, resume=resume, interrupt=interrupt,
                            on_start=lambda: _explain(backend, task, settings))
    finally:
        progress.close()
        for number in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(number)
        await evaluator.aclose()


def _run_to_resume(store: Archive, run_id: int):
    from archive import ArchiveError

    try:
        return store.get_run(run_id)
    except ArchiveError as error:
        held = [run.id for run in store.list_runs()]
        hint = f"the archive holds run{'s' if len(held) != 1 else ''} {', '.join(map(str, sorted(held)))}" if held \
            else "the archive holds no run yet: start one by naming a task"
        fail(str(error), hint)


def local_evaluator(settings: Settings) -> Evaluator:
    """The embedded evaluator: every GPU here, or interpreter slots (one per core, up to 4) on a CPU."""
    from evaluators.backends import cuda_available
    from evaluators.local import LocalEvaluator

    warm = settings.evaluation.warm
    if settings.backend != Backend.triton_interpret and cuda_available():
        return LocalEvaluator(warm=warm)
    workers = settings.evaluation.cpu_workers or max(1, min(4, os.cpu_count() or 1))
    return LocalEvaluator(devices=[], cpu_workers=workers, warm=warm)


def _interrupted(interrupt: Interrupt) -> None:
    interrupt.request()
    if interrupt.level == 1:
        err_console.print("[yellow]stopping:[/] the evaluations in flight finish and are stored; "
                          "interrupt again to drop them")
    else:
        err_console.print("[yellow]stopping now:[/] work in flight is dropped; children already made are "
                          "stored and evaluated on --resume")


def _explain(backend: str, task: Task, settings: Settings) -> None:
    """Say plainly what this run can and cannot tell, before it starts."""
    if backend == Backend.triton_interpret.value:
        console.print("[yellow]CPU only:[/] the Triton interpreter checks correctness; speed is not measured, "
                      "so no speedup is reported and the search cannot rank correct kernels by speed.",
                      soft_wrap=not console.is_terminal)
    if task.scale != 1:
        how = "--scale" if settings.scale else f"the default on {backend}; --scale 1 for full size"
        console.print(f"[dim]Task sizes scaled by {task.scale:g} ({how}).[/]", soft_wrap=not console.is_terminal)


def resolve_task(name: str, scale: float) -> Task:
    """A task file, or a task of the shipped suite by label (level1/13_Softmax), name (13_Softmax) or
    the name without its number (Softmax, case-insensitive)."""
    from evaluators.loading import TaskError
    from kernelsmith.evolve import EvolveError
    from kernelsmith.tasks import SuiteNotFound, load_suite, load_task, shipped_suite

    path = Path(name)
    try:
        if path.is_file():
            return load_task(path, scale)
        if path.suffix == ".py":
            raise EvolveError(f"task file {path} does not exist")
        suite = load_suite(shipped_suite())
    except (TaskError, SuiteNotFound) as error:
        raise EvolveError(str(error)) from None
    wanted = name.strip().lower()
    exact = [t for t in suite.tasks if wanted in (t.label.lower(), t.name.lower())]
    bare = [t for t in suite.tasks if re.sub(r"^\d+_", "", t.name).lower() == wanted]
    partial = [t for t in suite.tasks if wanted in t.name.lower()]
    for found in (exact, bare, partial):
        if len(found) == 1:
            try:
                return load_task(found[0].path, scale)
            except TaskError as error:
                raise EvolveError(str(error)) from None
        if len(found) > 1:
            raise EvolveError(f"{name!r} names several shipped tasks: {', '.join(t.label for t in found)}",
                              "give the label, e.g. " + found[0].label)
    close = difflib.get_close_matches(name, [t.name for t in suite.tasks], n=3, cutoff=0.5)
    raise EvolveError(f"{name!r} is neither a task file nor a task of the shipped suite"
                      + (f" (did you mean {', '.join(close)}?)" if close else ""),
                      "`kernelsmith tasks` lists the shipped suite")


def _write_best(summary: RunSummary, out: Path | None) -> Path | None:
    if summary.best_source is None:
        return None
    name = re.sub(r"[^\w.-]+", "_", summary.task_name.split("/")[-1])
    path = out or BEST_FOLDER / f"{name}-run{summary.run_id}.py"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(summary.best_source)
    except OSError as error:
        err_console.print(f"[bold red]error:[/] cannot write the best kernel to {path}: {error} "
                          f"(it is in the archive: program #{summary.best_program_id})")
        return None
    return path

