"""`kernelsmith leaderboard [SUITE]`: evolve on every task of a suite, then fast_p per level and overall as
a table, and as Markdown, CSV, JSON and an HTML report in a folder. Rerunning the same command continues.

Exit codes: 0 when every task of the leaderboard has finished, 1 when some have not (interrupted, or a
task could not start), 2 for misuse (no such suite, settings that differ from the named leaderboard's).
"""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.markup import escape

from evaluators.protocol import Backend
from kernelsmith.cli import app
from kernelsmith.console import EXIT_OK, EXIT_VERDICT, console, err_console, fail

if TYPE_CHECKING:
    from archive import Archive
    from kernelsmith.leaderboard import Plan, Session, TaskEvent


@app.command("leaderboard")
def leaderboard_command(
    suite: str | None = typer.Argument(None, help="a folder of task files or a KernelBench checkout "
                                       "(default: the shipped suite, or the named leaderboard's)"),
    level: list[int] = typer.Option([], "--level", "-l", help="only this level (repeatable)"),
    budget_per_task: int | None = typer.Option(None, "--budget-per-task", "-n", min=1,
                                               help="evaluations per task (default: budgets.max_evals)"),
    name: str | None = typer.Option(None, "--name", help="the leaderboard's name (default: made of the suite, "
                                    "levels, backend and budget); rerun with it to continue"),
    out: Path | None = typer.Option(None, "--out", "-o", help="folder for the tables and report "
                                    "(default: leaderboards/<name>/)"),
    markdown: Path | None = typer.Option(None, "--markdown", help="also write the Markdown table here, "
                                         "its plot beside it"),
    config: Path | None = typer.Option(None, "--config", "-c", help="YAML file (default: ./kernelsmith.yaml)"),
    db: str | None = typer.Option(None, "--db", help="archive path or SQLAlchemy URL (default: ./kernelsmith.db)"),
    model: str | None = typer.Option(None, "--model", help="use only this model (none: parameter tuning only)"),
    base_url: str | None = typer.Option(None, "--base-url", help="OpenAI-compatible endpoint for every model"),
    backend: Backend | None = typer.Option(None, "--backend", "-b", help="where candidates are evaluated"),
    seed: int | None = typer.Option(None, "--seed", help="same seed and same LLM replies, same runs"),
    evaluator: list[str] = typer.Option([], "--evaluator", help="evaluator service URL (repeatable; none: "
                                        "evaluate here, one warm evaluator for every task)"),
    scale: float | None = typer.Option(None, "--scale", help="task size scale in (0, 1] (default: 0.005 on the "
                                       "CPU interpreter, 1 on GPUs)"),
    wall_time: float | None = typer.Option(None, "--wall-time-per-task", help="seconds per task"),
    trials: int | None = typer.Option(None, "--trials", help="correctness trials per candidate"),
    repetitions: int | None = typer.Option(None, "--repetitions", help="timed repetitions per candidate (GPU)"),
    compile_baseline: bool | None = typer.Option(None, "--compile-baseline/--no-compile-baseline",
                                                 help="also time torch.compile for speedups over it "
                                                      "(default: on, unless the configuration says otherwise)"),
) -> None:
    """Evolve on every task of a suite and report fast_p per level and overall (resumable)."""
    import archive
    from kernelsmith.config import ConfigError, load_settings
    from kernelsmith.evolve import EvolveError
    from kernelsmith.leaderboard import LeaderboardError, Plan
    from kernelsmith.runs_command import LEADERBOARDS, safe_name

    if name is not None and (not name.strip() or name.isdigit()):
        fail(f"--name {name!r}: a leaderboard needs a name that is not a number (numbers name runs)")
    if suite is not None:
        from kernelsmith.tasks import SuiteNotFound, task_files

        try:
            task_files(suite)  # before the archive is opened: a typo must not leave an empty archive behind
        except SuiteNotFound as error:
            fail(str(error), "pass a folder of task files or a KernelBench checkout")
    flags = {
        "--model": model, "--base-url": base_url, "--db": db, "--backend": backend.value if backend else None,
        "--seed": seed, "--evaluator": evaluator, "--max-evals": budget_per_task, "--wall-time": wall_time,
        "--scale": scale, "--trials": trials, "--repetitions": repetitions,
    }
    try:
        loaded = load_settings(config, flags)
        store = archive.open(loaded.settings.db)
    except ConfigError as error:
        fail(str(error), error.hint)
    except archive.ArchiveError as error:
        fail(str(error))
    try:
        existing = store.leaderboards.find(name) if name else None
        if existing is not None:
            # a named leaderboard continues under its own settings; flags given now must agree with them
            loaded = load_settings(flags=flags, base=(f"leaderboard {name}", existing.config.get("settings", {})))
            suite = suite if suite is not None else existing.suite
            level = level or list(existing.config.get("levels") or [])
        settings = loaded.settings
        explicit = loaded.source("evaluation.compile_baseline") != "default"
        compile_on = compile_baseline if compile_baseline is not None else (
            settings.evaluation.compile_baseline if explicit or existing else True)
        settings = settings.model_copy(update={
            "db": store.where,
            "evaluation": settings.evaluation.model_copy(update={"compile_baseline": compile_on}),
        })
        settings.model_specs()  # a model without its API key: say so before anything starts
        plan = Plan(suite=suite, levels=tuple(sorted(set(level))), settings=settings, name=name)
        session = asyncio.run(_run(plan, store))
        folder = out or LEADERBOARDS / safe_name(session.leaderboard.name)
        code = _report(store, session, folder, markdown)
    except (ConfigError, EvolveError, LeaderboardError) as error:
        fail(str(error), error.hint)
    except archive.ArchiveError as error:
        fail(str(error), "what ran before the error is stored: rerun the same command to continue")
    finally:
        store.close()
    raise typer.Exit(code)


async def _run(plan: Plan, store: Archive) -> Session:
    from evaluators.client import open_evaluator
    from kernelsmith.evolve import Interrupt
    from kernelsmith.leaderboard import run_leaderboard
    from kernelsmith.progress import LiveProgress

    settings = plan.settings
    if settings.evaluators:
        evaluator = open_evaluator(settings.evaluators)
    elif settings.backend == Backend.triton_interpret:
        evaluator = open_evaluator(devices=[], cpu_workers=1, warm=settings.evaluation.warm)
    else:
        evaluator = open_evaluator(warm=settings.evaluation.warm)
    interrupt = Interrupt()
    loop = asyncio.get_running_loop()
    displays: list[LiveProgress] = []

    def progress(task: object) -> LiveProgress:
        displays.append(LiveProgress(console))
        return displays[-1]

    try:
        for number in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(number, _interrupted, interrupt)
        return await run_leaderboard(plan, store, evaluator, progress=progress, on_event=_tell, interrupt=interrupt)
    finally:
        for display in displays:
            display.close()
        for number in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(number)
        await evaluator.aclose()


def _tell(event: TaskEvent) -> None:
    where = f"[{event.index}/{event.total}]"
    if event.kind == "skipped":
        console.print(f"[dim]{where} {escape(event.label)}: {event.message}, skipped[/]")
    elif event.kind in ("starting", "resuming"):
        console.rule(f"{where} {escape(event.label)}" + (f" (resuming {event.message})" if event.message else ""))
    elif event.kind == "could not start":
        err_console.print(f"[yellow]{where} {escape(event.label)} could not start:[/] {escape(event.message)}")
    elif event.summary is not None:
        summary = event.summary
        if not summary.correct:
            verdict = "[red]no correct kernel[/]"
        elif summary.best_speedup is not None:
            verdict = f"[green]correct, {summary.best_speedup:.2f}x over eager[/]"
        else:
            verdict = "[green]correct[/] (not timed)"
        console.print(f"{where} {escape(event.label)}: {verdict} · run {summary.run_id}, {summary.evaluations} "
                      f"evaluations, {summary.wall_s:.0f} s · {escape(summary.stop_message)}")


def _interrupted(interrupt: object) -> None:
    from kernelsmith.evolve import Interrupt

    assert isinstance(interrupt, Interrupt)
    interrupt.request()
    if interrupt.level == 1:
        err_console.print("[yellow]stopping:[/] the task's evaluations in flight finish and are stored; rerun the "
                          "same command to continue the leaderboard (interrupt again to drop them)")


def _report(store: Archive, session: Session, folder: Path, markdown: Path | None) -> int:
    from kernelsmith.report import write_leaderboard_report
    from kernelsmith.standings import describe, read_standings, rich_tables

    standings = read_standings(store, session.leaderboard)
    console.rule(f"leaderboard {escape(session.leaderboard.name)}")
    for line in describe(standings):
        console.print(escape(line))
    for table in rich_tables(standings):
        console.print(table)
    try:
        files = write_leaderboard_report(store, session.leaderboard, folder, markdown)
    except OSError as error:
        fail(f"cannot write the leaderboard's files to {folder}: {error}",
             "the results are in the archive: `kernelsmith report NAME --out DIR` writes them elsewhere")
    console.print(f"[green]written:[/] {files.html}, {files.markdown}"
                  + "".join(f", {path}" for path in files.others))
    for problem in session.problems:
        err_console.print(f"[yellow]not in the leaderboard:[/] {escape(str(problem))}")
    unfinished = len(standings.rows) - standings.finished
    if session.stopped:
        err_console.print(f"[yellow]stopped:[/] {escape(session.stopped)}; rerun the same command (or any "
                          f"with --name {escape(session.leaderboard.name)}) to continue")
    elif unfinished:
        err_console.print(f"[yellow]{unfinished} task(s) not finished[/] (see the state column)")
    return EXIT_OK if unfinished == 0 else EXIT_VERDICT
