"""Shared terminal output: one rich console, user-facing errors, and the EvalResult view."""

from __future__ import annotations

import sys
from typing import NoReturn

from rich.console import Console
from rich.panel import Panel
from rich.table import Table

from evaluators.protocol import EvalResult, Status

console = Console(stderr=False, highlight=False)
err_console = Console(stderr=True, highlight=False)

STATUS_STYLE = {
    Status.ok: "bold green",
    Status.incorrect: "bold red",
    Status.compile_error: "bold yellow",
    Status.runtime_error: "bold red",
    Status.timeout: "bold magenta",
    Status.rejected: "bold red reverse",
    Status.infra_error: "bold blue",
}

EXIT_OK, EXIT_VERDICT, EXIT_USAGE = 0, 1, 2


def fail(message: str, hint: str | None = None, code: int = EXIT_USAGE) -> NoReturn:
    """Print a user-facing error (what, where, what to try) and exit."""
    err_console.print(f"[bold red]error:[/] {message}")
    if hint:
        err_console.print(f"[dim]hint:[/] {hint}")
    sys.exit(code)


def render_result(result: EvalResult) -> None:
    style = STATUS_STYLE.get(result.status, "bold")
    header = f"[{style}]{result.status.value}[/]  [dim]stage:[/] {result.stage.value}  [dim]task:[/] {result.task_name}"
    console.print(Panel(f"{header}\n{result.message}", title="kernelsmith eval", expand=False))

    if result.trials:
        table = Table(title="Correctness", show_lines=False)
        for column in ("trial", "phase", "passed", "max abs err", "max rel err", "rel L2 err", "mismatched"):
            table.add_column(column, justify="right")
        for trial in result.trials:
            table.add_row(
                str(trial.index),
                trial.phase,
                "[green]yes[/]" if trial.passed else "[red]no[/]",
                _num(trial.max_abs_error),
                _num(trial.max_rel_error),
                _num(trial.relative_l2_error),
                f"{trial.mismatched}/{trial.numel}" if trial.numel else "-",
            )
        console.print(table)

    if result.timing or result.baselines:
        table = Table(title="Timing (ms per call)")
        for column in ("", "median", "p10", "p90", "spread", "samples", "speedup"):
            table.add_column(column, justify="right")
        if result.timing:
            t = result.timing
            table.add_row("candidate", f"{t.median_ms:.4f}", f"{t.p10_ms:.4f}", f"{t.p90_ms:.4f}",
                          f"{t.spread:.1%}", str(t.samples), "")
        for name, t in result.baselines.items():
            speedup = result.speedup if name == "eager" else result.speedup_compile
            table.add_row(name, f"{t.median_ms:.4f}", f"{t.p10_ms:.4f}", f"{t.p90_ms:.4f}", f"{t.spread:.1%}",
                          str(t.samples), f"{speedup:.2f}x" if speedup else "")
        console.print(table)
    elif result.status == Status.ok:
        console.print("[dim]Not timed: the Triton interpreter on the CPU checks correctness only.[/]")

    if result.findings:
        table = Table(title="Findings")
        for column in ("rule", "severity", "line", "message"):
            table.add_column(column)
        for finding in result.findings:
            table.add_row(finding.rule, finding.severity, str(finding.line or ""), finding.message)
        console.print(table)

    env = result.environment
    console.print(
        f"[dim]{env.backend} on {env.device} · torch {env.torch} · triton {env.triton} · "
        f"sandbox {env.sandbox} (network {'cut' if env.network_isolated else 'not cut'}) · "
        f"{result.duration_s:.1f} s[/]"
    )
    if result.log and result.status not in (Status.ok,):
        console.print(Panel(result.log[-3000:], title="worker output (tail)", expand=False, style="dim"))


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.3g}"
