"""`kernelsmith tasks [SUITE]`: list a task suite as a table, and report the files that do not load."""

from __future__ import annotations

import typer
from rich.markup import escape
from rich.table import Table

from kernelsmith.cli import app
from kernelsmith.console import EXIT_OK, EXIT_VERDICT, console, err_console, fail


@app.command("tasks")
def tasks_command(
    suite: str | None = typer.Argument(
        None, help="a task file, a folder, a glob or a KernelBench checkout (default: the shipped suite)"
    ),
    level: int | None = typer.Option(None, "--level", min=0, help="only this level"),
    problem_id: int | None = typer.Option(None, "--id", min=0, help="only this problem id"),
    name: str | None = typer.Option(None, "--name", help="only names containing this (any case)"),
) -> None:
    """List a suite's tasks: level, id, name, what each computes, and whether it ships a seed kernel."""
    from kernelsmith.tasks import SuiteNotFound, load_suite, shipped_suite

    try:
        where = suite if suite is not None else shipped_suite()
        loaded = load_suite(where, level=level, problem_id=problem_id, name=name)
    except SuiteNotFound as error:
        fail(str(error), "pass a task file, a folder of them, a quoted glob, or a KernelBench checkout")

    if loaded.tasks:
        table = Table(title=f"{where}: {len(loaded.tasks)} task(s)", title_justify="left")
        table.add_column("level", justify="right")
        table.add_column("id", justify="right")
        table.add_column("name", no_wrap=True)
        table.add_column("description")
        table.add_column("seed", justify="center")
        for task in loaded.tasks:
            table.add_row(
                "-" if task.level is None else str(task.level),
                "-" if task.problem_id is None else str(task.problem_id),
                escape(task.name),
                escape(task.docstring) or "[dim]-[/]",
                "[green]yes[/]" if task.seed_source is not None else "[dim]no[/]",
            )
        console.print(table)
    else:
        filters = [
            f"{flag} {value}"
            for flag, value in (("--level", level), ("--id", problem_id), ("--name", name))
            if value is not None
        ]
        err_console.print(
            f"[bold red]no task[/] in {escape(str(where))}"
            + (f" matches {' '.join(filters)}" if filters else "")
        )

    for problem in loaded.problems:
        err_console.print(f"[bold red]broken:[/] {escape(str(problem.path))}: {escape(problem.message)}")
    raise typer.Exit(EXIT_OK if loaded.tasks and not loaded.problems else EXIT_VERDICT)
