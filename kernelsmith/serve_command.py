"""`kernelsmith serve`: run the evaluator REST service on this host (one slot per GPU)."""

from __future__ import annotations

import typer

from evaluators.api import TOKEN_ENV
from kernelsmith.cli import app
from kernelsmith.console import console, fail


@app.command("serve")
def serve_command(
    host: str = typer.Option("127.0.0.1", "--host", help="address to listen on; anything but loopback needs --token"),
    port: int = typer.Option(8470, "--port", help="port (0: any free port, printed at start)"),
    token: str | None = typer.Option(None, "--token", envvar=TOKEN_ENV, show_envvar=True,
                                     help="bearer token every request but /v1/health must carry"),
    devices: str | None = typer.Option(None, "--devices", help="GPU indices, e.g. 0,1 (default: all; 'none')"),
    cpu_workers: int | None = typer.Option(None, "--cpu-workers", min=0,
                                           help="Triton-interpreter (CPU) slots (default: 1 without GPUs, else 0)"),
    warm: int = typer.Option(0, "--warm", min=0, help="pre-started workers kept ready per slot"),
    max_queue: int = typer.Option(256, "--max-queue", min=1, help="jobs waiting at most before 429"),
    result_ttl: float = typer.Option(3600.0, "--result-ttl", min=0, help="seconds results are kept"),
    sandbox: str = typer.Option("process", "--sandbox",
                                help="where workers run: 'process' (locked-down subprocesses) or 'docker' (a "
                                "container each; needs dockerd)"),
    docker_image: str | None = typer.Option(None, "--docker-image",
                                            help="the workers' image with --sandbox docker (default: the one "
                                            "`make sandbox-image` builds)"),
) -> None:
    """Serve evaluations over HTTP for searches on other hosts (see docs/deploy.md)."""
    from evaluators.service import serve
    from evaluators.service_settings import ServiceConfigError, ServiceSettings, parse_devices

    try:
        settings = ServiceSettings(host=host, port=port, token=token or None, devices=parse_devices(devices),
                                   cpu_workers=cpu_workers, warm=warm, max_queue=max_queue, result_ttl_s=result_ttl,
                                   sandbox=sandbox, docker_image=docker_image)
        serve(settings, announce=lambda line: console.print(line, markup=False, soft_wrap=True))
    except ServiceConfigError as error:
        fail(str(error), "see `kernelsmith serve --help` and docs/deploy.md")
