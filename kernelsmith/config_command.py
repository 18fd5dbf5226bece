"""`kernelsmith config show`: the effective configuration, secrets masked, with each value's source."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from evaluators.protocol import Backend
from kernelsmith.cli import app
from kernelsmith.config import ConfigError, LoadedSettings, load_settings
from kernelsmith.console import console, fail

config_app = typer.Typer(help="Inspect the configuration.", no_args_is_help=True)
app.add_typer(config_app, name="config")

SECRET_KEY = re.compile(r"(key|token|secret|password)", re.IGNORECASE)
URL_CREDENTIALS = re.compile(r"(?<=://)[^/@\s]+@")


@config_app.command("show")
def show(
    config: Path | None = typer.Option(None, "--config", "-c", help="YAML file (default: ./kernelsmith.yaml)"),
    model: str | None = typer.Option(None, "--model", help="use only this model"),
    base_url: str | None = typer.Option(None, "--base-url", help="endpoint for every model"),
    db: str | None = typer.Option(None, "--db", help="archive path or SQLAlchemy URL"),
    backend: Backend | None = typer.Option(None, "--backend", help="where candidates are evaluated"),
    seed: int | None = typer.Option(None, "--seed"),
    evaluator: list[str] = typer.Option([], "--evaluator", help="evaluator service URL (repeatable)"),
    max_evals: int | None = typer.Option(None, "--max-evals"),
    max_cost: float | None = typer.Option(None, "--max-cost", help="US dollars"),
    wall_time: float | None = typer.Option(None, "--wall-time", help="seconds"),
    target_speedup: float | None = typer.Option(None, "--target-speedup"),
    as_json: bool = typer.Option(False, "--json", help="print one JSON object"),
) -> None:
    """Print the effective configuration and where each value came from (flag, env, file, default)."""
    flags = {
        "--model": model, "--base-url": base_url, "--db": db, "--backend": backend.value if backend else None,
        "--seed": seed, "--evaluator": evaluator, "--max-evals": max_evals, "--max-cost": max_cost,
        "--wall-time": wall_time, "--target-speedup": target_speedup,
    }
    try:
        loaded = load_settings(config, flags)
    except ConfigError as error:
        fail(str(error), error.hint)
    rows = effective_rows(loaded, os.environ)
    if as_json:
        payload = {"file": str(loaded.path) if loaded.path else None,
                   "values": {key: {"value": value, "source": source} for key, value, source in rows}}
        console.print_json(json.dumps(payload))
        return
    console.print(f"[dim]configuration file:[/] {loaded.path or '(none: defaults, environment and flags)'}")
    table = Table(show_lines=False)
    for column in ("key", "value", "source"):
        table.add_column(column)
    for key, value, source in rows:
        shown = json.dumps(value) if not isinstance(value, str) else value
        table.add_row(key, shown, source if source != "default" else "[dim]default[/]")
    console.print(table)
    if not loaded.settings.models:
        console.print("[dim]No model configured: evolution tunes parameters only, without an LLM.[/]")


def effective_rows(loaded: LoadedSettings, env: Any) -> list[tuple[str, Any, str]]:
    """(dotted key, masked value, source) for every setting, plus each model's resolved API key."""
    rows = []
    for key, value in _flatten(loaded.settings.model_dump(mode="json")):
        rows.append((key, _mask(key, value), loaded.source(key)))
    llm = loaded.settings.llm
    for index, model in enumerate(loaded.settings.models):
        variable = model.api_key_env or llm.api_key_env
        secret = env.get(variable)
        rows.append((f"models.{index}.api_key", mask_secret(secret) if secret else "(not set)", f"env {variable}"))
    return rows


def _flatten(value: Any, prefix: str = "") -> list[tuple[str, Any]]:
    if isinstance(value, dict) and value:
        return [item for k, v in value.items() for item in _flatten(v, f"{prefix}{k}.")]
    if isinstance(value, list) and value and any(isinstance(v, (dict, list)) for v in value):
        return [item for i, v in enumerate(value) for item in _flatten(v, f"{prefix}{i}.")]
    return [(prefix.rstrip("."), value)]


def _mask(key: str, value: Any) -> Any:
    last = key.rsplit(".", 1)[-1]
    if isinstance(value, str) and SECRET_KEY.search(last) and not last.endswith("_env"):
        return mask_secret(value)
    if isinstance(value, str):
        return URL_CREDENTIALS.sub("***@", value)
    if isinstance(value, list):
        return [URL_CREDENTIALS.sub("***@", v) if isinstance(v, str) else v for v in value]
    return value


def mask_secret(secret: str) -> str:
    """Enough to tell two keys apart, never enough to use one."""
    return "***" if len(secret) < 12 else f"{secret[:3]}...{secret[-4:]}"
