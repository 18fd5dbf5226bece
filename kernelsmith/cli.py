"""The `kernelsmith` command line: one Typer app, each command group in its own module.

Exit codes: 0 when the command's verdict is good, 1 for any other verdict, 2 for misuse
(a missing file, a bad flag). Errors are printed for people, never as a bare traceback.
"""

from __future__ import annotations

import importlib

import typer

app = typer.Typer(
    name="kernelsmith",
    help="Evolve faster, verified Triton kernels from PyTorch modules.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", help="print the version and exit", is_eager=True),
) -> None:
    """Evolve faster, verified Triton kernels from PyTorch modules."""
    if version:
        from kernelsmith import __version__

        typer.echo(f"kernelsmith {__version__}")
        raise typer.Exit(0)


# modules that add their commands to `app` when imported
COMMAND_MODULES = [
    "kernelsmith.eval_command",
    "kernelsmith.tasks_command",
    "kernelsmith.config_command",
    "kernelsmith.serve_command",
    "kernelsmith.doctor_command",
    "kernelsmith.evolve_command",
    "kernelsmith.export_command",
    "kernelsmith.runs_command",
    "kernelsmith.leaderboard_command",
]


def _register() -> None:
    for name in COMMAND_MODULES:
        importlib.import_module(name)


def main() -> None:
    _register()
    app()


_register()
