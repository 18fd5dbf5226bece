"""`kernelsmith eval REFERENCE CANDIDATE`: evaluate one candidate against its task, here."""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from evaluators.protocol import (
    MAX_REPETITIONS,
    MAX_TIME_LIMIT_S,
    Backend,
    CorrectnessSettings,
    EvalRequest,
    Status,
    TimingSettings,
)
from kernelsmith.cli import app
from kernelsmith.console import EXIT_OK, EXIT_VERDICT, console, fail, render_result


def _read(path: Path, what: str) -> str:
    if not path.is_file():
        fail(f"{what} file {path} does not exist", "pass the path of a Python file in KernelBench format")
    try:
        return path.read_text()
    except (OSError, UnicodeDecodeError) as error:
        fail(f"cannot read {what} file {path}: {error}")


def _check_range(flag: str, value: float, low: float, high: float) -> None:
    # checked here rather than by Typer so that both ends read the same, as one line
    if not low <= value <= high:
        fail(f"{flag} must be between {low:g} and {high:g}, got {value:g}")


@app.command("eval")
def eval_command(
    reference: Path = typer.Argument(..., help="task file defining Model, get_inputs, get_init_inputs"),
    candidate: Path = typer.Argument(..., help="candidate file defining ModelNew"),
    backend: Backend = typer.Option(Backend.auto, "--backend", "-b", help="where to evaluate"),
    trials: int = typer.Option(5, "--trials", min=1, max=100, help="correctness trials"),
    repetitions: int = typer.Option(100, "--repetitions", help=f"timed repetitions (GPU), 1 to {MAX_REPETITIONS}"),
    compile_baseline: bool = typer.Option(False, "--compile-baseline", help="also time torch.compile"),
    strict: bool = typer.Option(False, "--strict", help="ban torch compute ops in ModelNew.forward"),
    time_limit: float = typer.Option(
        300.0, "--time-limit", help=f"seconds for the candidate, 1 to {MAX_TIME_LIMIT_S:g}"
    ),
    device: int | None = typer.Option(None, "--device", help="GPU index"),
    as_json: bool = typer.Option(False, "--json", help="print exactly one EvalResult JSON object"),
) -> None:
    """Check a candidate's correctness (and speed, on a GPU) against its reference."""
    from evaluators.backends import BackendUnavailable
    from evaluators.judge import Judge
    from evaluators.loading import TaskError, check_reference_source

    _check_range("--repetitions", repetitions, 1, MAX_REPETITIONS)
    _check_range("--time-limit", time_limit, 1, MAX_TIME_LIMIT_S)
    reference_source = _read(reference, "reference")
    candidate_source = _read(candidate, "candidate")
    try:
        check_reference_source(reference_source)
    except TaskError as error:
        fail(f"{reference}: {error}", "the reference is the task: fix it before evaluating candidates")
    request = EvalRequest(
        task_name=reference.stem,
        reference_source=reference_source,
        candidate_source=candidate_source,
        backend=backend,
        correctness=CorrectnessSettings(trials=trials),
        timing=TimingSettings(repetitions=repetitions, baselines=["eager", "compile"] if compile_baseline else ["eager"]),
        strict=strict,
        time_limit_s=time_limit,
    )
    try:
        judge = Judge.for_backend(backend, device)
    except BackendUnavailable as error:
        fail(str(error), "use --backend triton-interpret to check correctness on the CPU")
    if not as_json and not judge.spec.measures_time:
        console.print("[dim]CPU only: the Triton interpreter checks correctness; speed is not measured.[/]")
    result = judge.evaluate(request)
    if as_json:
        sys.stdout.write(result.model_dump_json() + "\n")
    else:
        render_result(result)
    raise typer.Exit(EXIT_OK if result.status == Status.ok else EXIT_VERDICT)
