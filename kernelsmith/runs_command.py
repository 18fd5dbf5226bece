"""`kernelsmith runs`, `kernelsmith show RUN` and `kernelsmith report RUN_OR_LEADERBOARD`: what the archive
holds, one run in the terminal (or as JSON), and a run or a leaderboard as an HTML report.

Exit codes: 0 when shown, 2 for misuse (no such run or leaderboard, an archive that cannot be opened).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.markup import escape
from rich.syntax import Syntax
from rich.table import Table

from kernelsmith.cli import app
from kernelsmith.console import console, fail

if TYPE_CHECKING:
    from archive import Archive
    from kernelsmith.history import RunHistory

REPORTS = Path("reports")  # run reports go here unless --out says otherwise (ignored by git)
LEADERBOARDS = Path("leaderboards")  # a leaderboard's files go to leaderboards/<name>/

DB_HELP = "archive path or SQLAlchemy URL (default: the configuration's, else ./kernelsmith.db)"
CONFIG_HELP = "YAML file (default: ./kernelsmith.yaml); only its `db` is read"


def open_archive(db: str | None, config: Path | None, must_exist: bool = True) -> Archive:
    """The archive the user means: --db, else the configuration's db, else ./kernelsmith.db."""
    import archive
    from kernelsmith.config import ConfigError, load_settings

    try:
        location = load_settings(config, {"--db": db}).settings.db
    except ConfigError as error:
        fail(str(error), error.hint)
    shown = location or "kernelsmith.db"
    if must_exist and "://" not in shown and not Path(shown).is_file():
        fail(f"there is no archive at {shown}", "pass --db PATH, or run this where `kernelsmith evolve` ran")
    try:
        return archive.open(location)
    except archive.ArchiveError as error:
        fail(str(error))


@app.command("runs")
def runs_command(
    db: str | None = typer.Option(None, "--db", help=DB_HELP),
    config: Path | None = typer.Option(None, "--config", "-c", help=CONFIG_HELP),
    task: str | None = typer.Option(None, "--task", help="only tasks whose name contains this (any case)"),
    limit: int = typer.Option(50, "--limit", min=1, help="the newest N runs"),
) -> None:
    """List the archive's runs, newest first, with each one's best kernel; then its leaderboards."""
    store = open_archive(db, config)
    with store:
        runs = [r for r in store.list_runs() if task is None or task.lower() in r.task_name.lower()][:limit]
        table = Table(title=f"runs in {store.where}", title_justify="left")
        for column in ("run", "task", "status", "programs", "results", "best", "speedup", "backend", "updated"):
            table.add_column(column, justify="right" if column in ("run", "programs", "results") else "left")
        for run in runs:
            evaluated = store.evaluated_programs(run)
            best = store.best(run)
            verdict, speedup = "-", "-"
            if best is not None:
                program, evaluation = best
                verdict = f"#{program.id} " + ("[green]correct[/]" if evaluation.status.value == "ok"
                                               else f"[red]{evaluation.status.value}[/]")
                if evaluation.status.value == "ok":
                    speedup = f"{evaluation.speedup:.2f}x" if evaluation.speedup is not None else "not timed"
            table.add_row(str(run.id), escape(run.task_name), run.status.value, str(len(store.programs(run))),
                          str(len(evaluated)), verdict, speedup, escape(str(run.config.get("backend", "-"))),
                          run.updated_at.strftime("%Y-%m-%d %H:%M"))
        if runs:
            console.print(table)
        else:
            console.print(f"no runs in {store.where}" + (f" of a task matching {task!r}" if task else ""))
        boards = store.leaderboards.list()
        if boards:
            listing = Table(title="leaderboards", title_justify="left")
            for column in ("name", "tasks", "started", "suite", "updated"):
                listing.add_column(column)
            for board in boards:
                listing.add_row(escape(board.name), str(len(board.entries)),
                                str(sum(e.run_id is not None for e in board.entries)), escape(board.suite),
                                board.updated_at.strftime("%Y-%m-%d %H:%M"))
            console.print(listing)


@app.command("show")
def show_command(
    run: int = typer.Argument(..., help="the run's id (`kernelsmith runs` lists them)"),
    db: str | None = typer.Option(None, "--db", help=DB_HELP),
    config: Path | None = typer.Option(None, "--config", "-c", help=CONFIG_HELP),
    as_json: bool = typer.Option(False, "--json", help="print the run as JSON instead"),
    source: bool = typer.Option(False, "--source", help="also print the best kernel's source"),
) -> None:
    """Show one run: its best kernel, results by status and generation, and the lineage of its best."""
    import archive
    from kernelsmith.history import history_json, read_history

    store = open_archive(db, config)
    with store:
        try:
            history = read_history(store, run)
        except archive.ArchiveError as error:
            fail(str(error), "`kernelsmith runs` lists the runs of an archive")
    if as_json:
        print(json.dumps(history_json(history), indent=2))
        return
    _show(history, source)


def _show(history: RunHistory, source: bool) -> None:
    from kernelsmith.report import run_facts, step_result, verdict

    run = history.run
    console.print(f"[bold]run {run.id}[/] · {escape(run.task_name)} · {run.status.value}")
    console.print(verdict(history))
    if not history.measured:
        console.print("[yellow]Speed not measured:[/] the CPU interpreter checks correctness only.")
    facts = Table(show_header=False, box=None, padding=(0, 2))
    facts.add_column(style="dim", justify="right")
    facts.add_column()
    for name, value in run_facts(history).items():
        facts.add_row(name, escape(value))
    console.print(facts)

    outcomes = Table(title="programs by outcome", title_justify="left")
    outcomes.add_column("outcome")
    outcomes.add_column("programs", justify="right")
    for name, count in history.outcomes.most_common():
        outcomes.add_row(name, str(count))
    console.print(outcomes)

    generations = Table(title="by generation", title_justify="left")
    for column in ("generation", "programs", "results", "correct", "best speedup", "mean speedup"):
        generations.add_column(column, justify="right")
    for g in history.generations:
        generations.add_row(str(g.generation), str(g.count), str(g.evaluated), str(g.ok), _times(g.best_speedup),
                            _times(g.mean_speedup))
    console.print(generations)

    lineage = Table(title="lineage of the best program", title_justify="left")
    for column in ("step", "program", "operator", "generation", "result", "what changed"):
        lineage.add_column(column, justify="right" if column in ("step", "program", "generation") else "left")
    for number, step in enumerate(history.lineage, start=1):
        lineage.add_row(str(number), f"#{step.program.id}", step.program.operator, str(step.program.generation),
                        step_result(step, history), escape(step.description))
    console.print(lineage)
    best = history.best_correct
    if source and best is not None:
        console.print(Syntax(best[0].source, "python", line_numbers=True))
    elif best is not None:
        console.print(f"[dim]--source prints the best kernel; `kernelsmith report {run.id}` writes an HTML report.[/]")


@app.command("report")
def report_command(
    target: str = typer.Argument(..., help="a run id, or a leaderboard's name"),
    db: str | None = typer.Option(None, "--db", help=DB_HELP),
    config: Path | None = typer.Option(None, "--config", "-c", help=CONFIG_HELP),
    out: Path | None = typer.Option(None, "--out", "-o", help=f"folder for the files (default: {REPORTS}/ for a "
                                    f"run, {LEADERBOARDS}/<name>/ for a leaderboard)"),
    markdown: Path | None = typer.Option(None, "--markdown", help="a leaderboard's Markdown also here, with its "
                                         "plot beside it"),
) -> None:
    """Write a self-contained HTML report (and Markdown with PNG plots) of a run or a leaderboard."""
    import archive
    from kernelsmith.report import write_leaderboard_report, write_run_report

    store = open_archive(db, config)
    with store:
        try:
            if target.isdigit():
                if markdown is not None:
                    fail("--markdown is for a leaderboard; a run's Markdown is written beside its HTML")
                files = write_run_report(store, int(target), out or REPORTS)
            else:
                files = write_leaderboard_report(store, target, out or LEADERBOARDS / safe_name(target), markdown)
        except archive.ArchiveError as error:
            fail(str(error), "`kernelsmith runs` lists the runs and leaderboards of an archive")
        except OSError as error:
            fail(f"cannot write the report: {error}")
    console.print(f"[green]report:[/] {files.html}")
    console.print(f"[dim]markdown:[/] {files.markdown}" + "".join(f"\n[dim]also:[/] {p}" for p in files.others))


def safe_name(name: str) -> str:
    """A leaderboard name as a folder name."""
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name).strip(".") or "leaderboard"


def _times(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"
