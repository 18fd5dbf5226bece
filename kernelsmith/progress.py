"""Live progress of a run in the terminal (rich), one line per result elsewhere, and the summary table."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console, Group
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from kernelsmith.budget import RunStats
from kernelsmith.evolve import RunSummary

NOT_TIMED = "correct, not timed"


class LiveProgress:
    """Draws a run's state; on a terminal as a live panel, otherwise (logs, pipes) as one line per event."""

    def __init__(self, console: Console, live: bool | None = None) -> None:
        self.console = console
        self.live = console.is_terminal if live is None else live
        self._display: Live | None = None
        self._stats: RunStats | None = None
        self._last_line = ""

    def started(self, stats: RunStats) -> None:
        self._stats = stats
        self.console.print(header(stats), soft_wrap=not self.live)
        if self.live:
            self._display = Live(self, console=self.console, refresh_per_second=4, transient=False)
            self._display.start()

    def update(self, stats: RunStats) -> None:
        self._stats = stats
        if self._display is not None:
            self._display.refresh()
            return
        line = f"[{stats.evaluations}/{stats.max_evals or '-'}] {stats.last_event}"
        if stats.last_event and line != self._last_line:
            self._last_line = line
            self.console.print(line, markup=False, highlight=False, soft_wrap=True)

    def finished(self, summary: RunSummary) -> None:
        self.close()

    def close(self) -> None:
        if self._display is not None:
            self._display.stop()
            self._display = None

    def __rich__(self) -> Group:
        return panel(self._stats) if self._stats is not None else Group()


def header(stats: RunStats) -> str:
    verb = "resuming" if stats.resumed else "run"
    search = "LLM operators and parameter tuning" if stats.uses_llm else "parameter tuning only (no model configured)"
    return (f"[bold]{verb} {stats.run_id}[/] · {stats.task_name} · {stats.backend} · {search} · "
            f"{stats.proposals} children at once")


def best_text(stats: RunStats) -> str:
    if stats.best_fitness is None:
        return "nothing evaluated yet"
    if not stats.best_correct:
        return f"none correct yet (closest: #{stats.best_program_id}, {stats.best_fitness.status.value})"
    if stats.best_speedup is not None:
        return f"{stats.best_speedup:.2f}x over eager PyTorch (program #{stats.best_program_id})"
    return f"{NOT_TIMED} (program #{stats.best_program_id})"


def statuses_text(stats: RunStats) -> str:
    parts = [f"{status} {count}" for status, count in sorted(stats.statuses.items(), key=lambda kv: -kv[1])]
    if stats.failed_mutations:
        parts.append(f"failed mutations {stats.failed_mutations}")
    text = " · ".join(parts) or "-"
    return text + (f" ({stats.reused} reused from identical programs)" if stats.reused else "")


def llm_text(stats: RunStats) -> str:
    if not stats.uses_llm and not stats.llm_calls:
        return "no model: parameter tuning only"
    failed = f" ({stats.failed_llm_calls} failed)" if stats.failed_llm_calls else ""
    return (f"{stats.llm_calls} calls{failed} · {stats.prompt_tokens:,} prompt + {stats.completion_tokens:,} "
            f"completion tokens · ${stats.cost:.4f}")


def panel(stats: RunStats) -> Group:
    elapsed = stats.elapsed_s
    rate = f"{stats.evaluations / elapsed * 60:.1f} evaluations/min" if elapsed > 1 and stats.evaluations else "-"
    total = stats.max_evals or max(stats.evaluations, 1)
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="dim", justify="right")
    grid.add_column()
    grid.add_row("evaluations", Group(
        ProgressBar(total=total, completed=min(stats.evaluations, total), width=40),
        Text(f"{stats.evaluations} of {stats.max_evals or 'unlimited'} · {rate} · {elapsed:.0f} s · "
             f"{stats.in_flight} in flight"),
    ))
    grid.add_row("best", best_text(stats))
    grid.add_row("results", statuses_text(stats))
    grid.add_row("LLM", llm_text(stats))
    grid.add_row("last", Text(stats.last_event or "-", overflow="ellipsis", no_wrap=True))
    return Group(grid)


def summary_table(summary: RunSummary, out: Path | None) -> Table:
    table = Table(title="kernelsmith evolve", show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column()
    table.add_row("run", f"{summary.run_id} ({summary.status.value}: {summary.stop_message})")
    table.add_row("task", summary.task_name)
    table.add_row("backend", f"{summary.backend} on {summary.device or 'unknown device'}")
    table.add_row("evaluations", f"{summary.evaluations} run, {summary.reused} reused, "
                                 f"{summary.failed_mutations} failed mutations, {summary.programs} programs stored")
    if summary.best_program_id is None:
        table.add_row("best program", "none: nothing was evaluated")
    else:
        table.add_row("best program", f"#{summary.best_program_id}")
        table.add_row("best result", _best_result(summary))
        table.add_row("lineage", f"{summary.lineage} program{'s' if summary.lineage != 1 else ''} from the first to the best")
    if summary.llm_calls:
        table.add_row("LLM", f"{summary.llm_calls} calls · {summary.tokens:,} tokens · ${summary.cost:.4f}")
    table.add_row("best kernel", str(out) if out is not None else "not written: no correct kernel")
    table.add_row("time", f"{summary.wall_s:.1f} s")
    return table


def _best_result(summary: RunSummary) -> str:
    if not summary.correct:
        status = summary.best_status.value if summary.best_status else "?"
        return f"[red]no correct kernel[/] (the best got as far as {status})"
    if summary.best_speedup is not None:
        return f"[green]correct, {summary.best_speedup:.2f}x over eager PyTorch[/]"
    if not summary.measured:
        return f"[green]{NOT_TIMED}[/] (the CPU interpreter checks correctness only)"
    return "[green]correct[/], no speedup measured"
