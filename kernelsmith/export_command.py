"""`kernelsmith export sft|rl OUT`: the archive's improvement and repair steps as JSONL training data.

Writes OUT/train.jsonl and, with --validation, OUT/validation.jsonl (tasks held out whole). Exit codes:
0 when some example was written, 1 when no step passed the filters, 2 for misuse (no archive, unknown run).
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from evaluators.protocol import Backend
from kernelsmith.cli import app
from kernelsmith.console import EXIT_OK, EXIT_VERDICT, console, err_console, fail
from kernelsmith.export import (
    DEFAULT_CATEGORIES,
    DEFAULT_MIN_GAIN,
    Category,
    ExportError,
    Step,
    StepFilter,
    StepSelection,
)

export_app = typer.Typer(help="Training data from the archive's evolution trajectories.", no_args_is_help=True)
app.add_typer(export_app, name="export")

SPLITS = ("train", "validation")
BACKENDS = [backend.value for backend in Backend if backend != Backend.auto]

Out = Annotated[Path, typer.Argument(help="folder for train.jsonl (and validation.jsonl); created if missing")]
Db = Annotated[str | None, typer.Option("--db", help="archive path or SQLAlchemy URL (default: ./kernelsmith.db)")]
Config = Annotated[Path | None, typer.Option("--config", "-c", help="YAML file (default: ./kernelsmith.yaml)")]
MinGain = Annotated[float, typer.Option("--min-gain", help="an improvement's child is at least this many times as "
                                        "fast as its parent (speedup ratio, > 1)")]
Categories = Annotated[list[Category] | None, typer.Option(
    "--category", help="improvement, repair, untimed (correct to correct, not timed: the CPU interpreter); "
                       "repeatable (default: improvement and repair)")]
Backends = Annotated[list[str] | None, typer.Option("--backend", help=f"only steps evaluated on this backend "
                                                   f"({', '.join(BACKENDS)}); repeatable")]
Tasks = Annotated[list[str] | None, typer.Option("--task", help="only runs of this task (label or name); repeatable")]
Runs = Annotated[list[int] | None, typer.Option("--run", help="only this run id; repeatable")]
Operators = Annotated[list[str] | None, typer.Option("--operator", help="only children made by this operator "
                                                     "(rewrite, diff, fix, params...); repeatable")]
Validation = Annotated[float, typer.Option("--validation", help="share of tasks held out for validation.jsonl, "
                                           "in [0, 1)")]
SplitSeed = Annotated[int, typer.Option("--split-seed", help="which tasks are held out: same seed, same split")]


@export_app.command("sft")
def sft_command(out: Out, db: Db = None, config: Config = None, min_gain: MinGain = DEFAULT_MIN_GAIN,
                category: Categories = None, backend: Backends = None, task: Tasks = None, run: Runs = None,
                operator: Operators = None, validation: Validation = 0.0, split_seed: SplitSeed = 0,
                metadata: bool = typer.Option(True, "--metadata/--no-metadata",
                                              help="a metadata object beside the messages")) -> None:
    """Chats (system, user, assistant) for supervised fine-tuning: the prompt that made each kept child,
    and the child as the reply the loop parses."""
    from kernelsmith.export_prompts import UnwritableReply
    from kernelsmith.export_sft import sft_record

    selection = _select(db, config, min_gain, category, backend, task, run, operator, validation, split_seed)
    unwritable: Counter[str] = Counter()

    def records(steps: list[Step]) -> list[dict[str, Any]]:
        made = []
        for step in steps:
            try:
                made.append(sft_record(step))
            except UnwritableReply:
                unwritable["child cannot be written as a reply"] += 1
        return made

    _export("sft", out, selection, records, unwritable, metadata=metadata)


@export_app.command("rl")
def rl_command(out: Out, db: Db = None, config: Config = None, min_gain: MinGain = DEFAULT_MIN_GAIN,
               category: Categories = None, backend: Backends = None, task: Tasks = None, run: Runs = None,
               operator: Operators = None, validation: Validation = 0.0, split_seed: SplitSeed = 0) -> None:
    """Prompts for execution-rewarded RL: one per distinct parent of a kept step, with the reference as
    ground truth, the parent, the entry point and the evaluation settings (docs/export.md: scoring)."""
    from kernelsmith.export_rl import rl_records

    selection = _select(db, config, min_gain, category, backend, task, run, operator, validation, split_seed)
    _export("rl", out, selection, rl_records, Counter())


def _select(db: str | None, config: Path | None, min_gain: float, categories: list[Category] | None,
            backends: list[str] | None, tasks: list[str] | None, runs: list[int] | None,
            operators: list[str] | None, validation: float, seed: int) -> StepSelection:
    import archive
    from kernelsmith.config import ConfigError, load_settings
    from kernelsmith.export import find_steps

    unknown = sorted(set(backends or ()) - set(BACKENDS))
    if unknown:
        fail(f"unknown backend {', '.join(unknown)}", f"one of {', '.join(BACKENDS)}")
    try:
        location = load_settings(config, {"--db": db}).settings.db or "kernelsmith.db"
    except ConfigError as error:
        fail(str(error), error.hint)
    if "://" not in location and not Path(location).expanduser().is_file():
        fail(f"no archive at {location}", "pass --db with the archive `kernelsmith evolve` wrote to")
    try:
        filters = StepFilter(min_gain=min_gain, categories=frozenset(categories or DEFAULT_CATEGORIES),
                             backends=frozenset(backends or ()), tasks=frozenset(tasks or ()),
                             runs=frozenset(runs or ()), operators=frozenset(operators or ()))
        with archive.open(location) as store:
            return find_steps(store, filters, validation=validation, seed=seed)
    except (ExportError, archive.ArchiveError) as error:
        fail(str(error))


def _export(kind: str, out: Path, selection: StepSelection,
            make: Callable[[list[Step]], list[dict[str, Any]]], unwritable: Counter[str], *,
            metadata: bool = True) -> None:
    if out.exists() and not out.is_dir():
        fail(f"{out} is a file; the export writes a folder of JSONL files", "name a folder")
    written: dict[str, tuple[Path, list[dict[str, Any]]]] = {}
    for split in SPLITS:
        records = make(selection.split(split))
        if records:
            written[split] = (out / f"{split}.jsonl", records)
    left_out = selection.skipped + unwritable
    if not written:
        _print_left_out(left_out)
        err_console.print("[bold red]nothing to export:[/] no step passed the filters")
        raise typer.Exit(EXIT_VERDICT)
    out.mkdir(parents=True, exist_ok=True)
    for path, records in written.values():
        write_jsonl(path, records if metadata else ({k: v for k, v in r.items() if k != "metadata"} for r in records))
    for split in SPLITS:
        stale = out / f"{split}.jsonl"
        if split not in written and stale.exists():
            stale.unlink()  # an earlier export's split would otherwise pass for part of this one
            console.print(f"[dim]removed {escape(str(stale))} from an earlier export[/]")
    _print_summary(kind, selection, written)
    _print_left_out(left_out)
    raise typer.Exit(EXIT_OK)


def write_jsonl(path: Path, records: Iterable[dict[str, Any]]) -> None:
    """One JSON object per line, written whole or not at all (a failed export leaves the old file)."""
    partial = path.with_name(path.name + ".partial")
    try:
        with partial.open("w", encoding="utf-8") as file:
            for record in records:
                file.write(json.dumps(record, ensure_ascii=False, allow_nan=False) + "\n")
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)


def _print_summary(kind: str, selection: StepSelection,
                   written: dict[str, tuple[Path, list[dict[str, Any]]]]) -> None:
    table = Table(title=f"kernelsmith export {kind}", title_justify="left")
    for column in ("split", "file", "records", "tasks", *(c.value for c in Category)):
        table.add_column(column, justify="left" if column in ("split", "file") else "right",
                         overflow="fold" if column == "file" else "ellipsis")
    for split, (path, records) in written.items():
        categories = Counter(record["metadata"]["category"] for record in records)
        tasks = {record["metadata"]["task"] for record in records}
        table.add_row(split, escape(str(path)), str(len(records)), str(len(tasks)),
                      *(str(categories.get(c.value, 0)) for c in Category))
    console.print(table)
    if selection.validation_tasks:
        console.print(f"[dim]validation tasks:[/] {escape(', '.join(sorted(selection.validation_tasks)))}")
    elif selection.validation_share > 0:
        console.print("[yellow]nothing held out for validation:[/] the export has a single task")


def _print_left_out(left_out: Counter[str]) -> None:
    if left_out:
        reasons = ", ".join(f"{count} {why}" for why, count in sorted(left_out.items(), key=lambda kv: (-kv[1], kv[0])))
        console.print(f"[dim]steps left out:[/] {escape(reasons)}")

