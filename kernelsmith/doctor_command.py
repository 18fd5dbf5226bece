"""`kernelsmith doctor`: what this host has for evaluating kernels, what it lacks, and where to get it.

Exit code 0 when everything the chosen backend needs is here, 1 otherwise; the LLM endpoints,
docker and the sandbox's isolation are reported without deciding the exit code.
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import httpx
import typer
from rich.table import Table

from evaluators.metax import MetaxHost
from evaluators.protocol import Backend
from kernelsmith.cli import app
from kernelsmith.config import Settings
from kernelsmith.console import EXIT_OK, EXIT_VERDICT, console

OPENAI_DEFAULT_URL = "https://api.openai.com/v1"  # where the openai package goes without a base_url
STYLE = {"ok": "green", "missing": "bold red", "warning": "yellow", "info": "dim"}


@dataclass
class Check:
    name: str
    status: str  # ok, missing, warning or info
    detail: str
    needed: bool = False  # a needed check that is missing makes the exit code 1

    @property
    def fails(self) -> bool:
        return self.needed and self.status == "missing"


@app.command("doctor")
def doctor(
    config: Path | None = typer.Option(None, "--config", "-c", help="YAML file (default: ./kernelsmith.yaml)"),
    backend: Backend | None = typer.Option(None, "--backend", "-b", help="check for this backend (default: config's)"),
    image: str | None = typer.Option(None, "--image", help="the docker sandbox's image (default: the one "
                                     "`--sandbox docker` uses, which `make sandbox-image` builds)"),
    timeout: float = typer.Option(5.0, "--timeout", min=0.1, help="seconds for each network check"),
) -> None:
    """Report the GPU, the backend `auto` picks, versions, docker, LLM endpoints and sandbox isolation."""
    from evaluators.sandbox_docker import DEFAULT_IMAGE
    from kernelsmith.config import ConfigError, load_settings

    checks: list[Check] = []
    settings = None
    try:
        loaded = load_settings(config, {"--backend": backend.value if backend else None})
        settings = loaded.settings
        if loaded.path:
            checks.append(Check("configuration", "ok", str(loaded.path)))
    except ConfigError as error:
        checks.append(Check("configuration", "missing", str(error), needed=True))
    chosen = backend or (settings.backend if settings else Backend.auto)
    checks += host_checks(chosen)
    checks += sandbox_checks()
    checks += docker_checks(image or DEFAULT_IMAGE, os.environ, timeout)
    if settings is not None:
        checks += llm_checks(settings, os.environ, timeout)
    render(checks)
    raise typer.Exit(EXIT_VERDICT if any(check.fails for check in checks) else EXIT_OK)


def render(checks: list[Check]) -> None:
    table = Table(title="kernelsmith doctor", show_lines=False)
    for column in ("check", "status", "found"):
        table.add_column(column, overflow="fold")
    for check in checks:
        table.add_row(check.name, f"[{STYLE.get(check.status, '')}]{check.status}[/]", check.detail)
    console.print(table)
    failing = list(dict.fromkeys(check.name for check in checks if check.fails))
    if failing:
        console.print(f"[bold red]Missing for this backend:[/] {', '.join(failing)}")
    else:
        console.print("[green]Everything the chosen backend needs is here.[/]")


# -- the host: versions, GPU, backend, MetaX ----------------------------------------------------

def host_checks(backend: Backend, root: Path = Path("/"), env: Mapping[str, str] | None = None) -> list[Check]:
    """Versions, the GPUs torch sees, which backend runs (and why not), and MetaX's parts."""
    import torch

    from evaluators.backends import BackendUnavailable, HostFacts, resolve
    from evaluators.compat import triton_version
    from evaluators.metax import detect

    env = os.environ if env is None else env
    facts = HostFacts.probe(root, env)
    triton = triton_version()
    checks = [
        Check("python", "info", f"{platform.python_version()} ({sys.executable})"),
        Check("torch", "ok", f"{torch.__version__}" + (f", CUDA {torch.version.cuda}" if torch.version.cuda else "")),
        Check("triton", "ok", triton + (f", target {facts.metax.triton_target}" if facts.metax.triton_target else "")),
    ]
    wants_gpu = backend in (Backend.triton_nvidia, Backend.maca_metax)
    if facts.gpu_count:
        names = [torch.cuda.get_device_name(i) for i in range(facts.gpu_count)]
        checks.append(Check("GPU", "ok", "; ".join(f"{i}: {name}" for i, name in enumerate(names))))
    else:
        checks.append(Check("GPU", "missing" if wants_gpu else "info",
                            "none: torch sees no GPU (the Triton interpreter checks correctness on the CPU)",
                            needed=wants_gpu))
    try:
        spec = resolve(backend, facts=facts)
        what = "correctness only, no timings" if not spec.measures_time else f"GPU {spec.device_index}"
        picked = f"auto picks {spec.backend.value}" if backend == Backend.auto else spec.backend.value
        checks.append(Check("backend", "ok", f"{picked} ({what})"))
        chosen = spec.backend
    except BackendUnavailable as error:
        checks.append(Check("backend", "missing", f"{backend.value}: {error}", needed=True))
        chosen = backend
    if chosen == Backend.triton_interpret:
        checks += _interpreter_checks(triton)
    if facts.metax.present or backend == Backend.maca_metax:
        host = detect(root, env, facts.metax.triton_target, query=True)  # now mx-smi's table too
        checks += metax_checks(host, needed=Backend.maca_metax in (chosen, backend), env=env)
    else:
        checks.append(Check("MetaX", "info", "not a MetaX host (no /dev/mxcd, no mx-smi, MACA_PATH unset)"))
    return checks


def _interpreter_checks(triton: str) -> list[Check]:
    import numpy

    if triton.startswith("3.0.") and int(numpy.__version__.split(".")[0]) >= 2:
        return [Check("numpy", "missing", f"{numpy.__version__}: Triton 3.0's interpreter silently writes nothing "
                      "to tensors under numpy 2 (every result wrong); install numpy<2", needed=True)]
    return []


def metax_checks(host: MetaxHost, needed: bool, env: Mapping[str, str]) -> list[Check]:
    """What a MetaX host shows (device files, mx-smi's devices and versions) and what it lacks."""
    checks = [Check("MetaX", "ok" if host.present else "missing", "; ".join(host.evidence()) or "no sign of MetaX",
                    needed=needed)]
    if host.report is not None:
        devices = "; ".join(f"{d.index}: {d.describe()}" + (f" ({d.state})" if d.state else "")
                            for d in host.report.devices) or "no GPU listed"
        checks.append(Check("mx-smi", "ok" if host.report.devices else "missing",
                            f"{devices}; {host.report.versions()}", needed=needed))
    for gap in host.missing():
        checks.append(Check("MetaX needs", "missing" if needed else "warning", gap, needed=needed))
    if env.get("MACA_MPS_MODE") != "1":
        checks.append(Check("MACA_MPS_MODE", "warning", "unset: MACA may refuse the worker a GPU the evaluator "
                            "already holds; start the evaluator with MACA_MPS_MODE=1"))
    return checks


# -- the sandbox: network namespace, dropped privileges ------------------------------------------

def sandbox_checks() -> list[Check]:
    """Can the process sandbox's jail cut a worker's network and drop root? Asked of the jail itself."""
    jail = [sys.executable, "-m", "evaluators.jail"]
    checks = []
    try:
        ours = os.readlink("/proc/self/ns/net")
        done = subprocess.run([*jail, "--net", "--", "readlink", "/proc/self/ns/net"],
                              capture_output=True, text=True, timeout=30)
        theirs = done.stdout.strip()
    except (OSError, subprocess.TimeoutExpired) as error:
        ours, theirs = "", f"failed: {error}"
    if theirs and theirs != ours and theirs.startswith("net:"):
        checks.append(Check("network isolation", "ok", "workers get an empty network namespace (unshare works)"))
    else:
        checks.append(Check("network isolation", "warning", "unshare is refused here: workers keep the host's "
                            "network (run as root, or allow unprivileged user namespaces)"))
    if os.geteuid() != 0:
        checks.append(Check("privileges", "info", f"not root: workers run as uid {os.geteuid()}, nothing to drop"))
        return checks
    from evaluators import worker_users

    try:
        user = worker_users.claim()
    except worker_users.NoWorkerUser as error:
        checks.append(Check("privileges", "missing", f"no worker could start: {error}", needed=True))
        return checks
    who = (f"a user of its own (uids {worker_users.FIRST_UID} to {worker_users.FIRST_UID + worker_users.UID_COUNT - 1})"
           if user.own else f"nobody (uid {worker_users.NOBODY}: no lock directory only root controls)")
    try:
        probe = subprocess.run([*jail, "--uid", str(user.uid), "--gid", str(user.uid), "--probe"],
                               capture_output=True, text=True, timeout=120, cwd="/")
        dropped = probe.returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        dropped = False
    finally:
        user.release()
    if dropped:
        checks.append(Check("privileges", "ok", f"root drops each worker to {who}"))
    else:
        checks.append(Check("privileges", "warning", f"{who} cannot run {os.path.realpath(sys.executable)} "
                            "and import torch and triton with it: workers would run as root; install Python and "
                            "this environment where every user can read them"))
    return checks


# -- docker: the daemon and the sandbox image -----------------------------------------------------

def docker_checks(image: str, env: Mapping[str, str], timeout: float) -> list[Check]:
    """Does the docker daemon answer (DOCKER_HOST, else its socket), and is the sandbox image there?"""
    endpoint = env.get("DOCKER_HOST") or "unix:///var/run/docker.sock"
    if endpoint.startswith("unix://"):
        transport = httpx.HTTPTransport(uds=endpoint.removeprefix("unix://"))
        base = "http://docker"
    elif endpoint.startswith("tcp://"):
        transport, base = httpx.HTTPTransport(), "http://" + endpoint.removeprefix("tcp://")
    else:
        return [Check("docker", "warning", f"DOCKER_HOST={endpoint}: only unix:// and tcp:// are checked")]
    try:
        with httpx.Client(transport=transport, base_url=base, timeout=timeout) as client:
            version = client.get("/version").raise_for_status().json().get("Version", "?")
            found = client.get(f"/images/{quote(image, safe='')}/json")
    except (httpx.HTTPError, ValueError) as error:
        return [Check("docker", "warning", f"daemon not reachable at {endpoint} ({type(error).__name__}); "
                      "only the docker sandbox needs it")]
    checks = [Check("docker", "ok", f"daemon {version} at {endpoint}")]
    if found.status_code == 200:
        checks.append(Check("docker image", "ok", f"{image} is present"))
    else:
        checks.append(Check("docker image", "warning", f"{image} is not present: build it with `python -m "
                            f"evaluators.sandbox_docker build-image --tag {image}`; only --sandbox docker needs it"))
    return checks


# -- LLM endpoints -----------------------------------------------------------------------------

def llm_checks(settings: Settings, env: Mapping[str, str], timeout: float) -> list[Check]:
    """One short request per configured endpoint: GET /models, else a one-token chat completion.
    Keys go in the Authorization header only; nothing here prints one."""
    if not settings.models:
        return [Check("LLM", "info", "no model configured: evolution tunes parameters only, without an LLM")]
    checks = []
    endpoints: dict[tuple[str, str], list[str]] = {}
    for model in settings.models:
        url = (model.base_url or settings.llm.base_url or OPENAI_DEFAULT_URL).rstrip("/")
        endpoints.setdefault((url, model.api_key_env or settings.llm.api_key_env), []).append(model.name)
    for (url, key_env), names in endpoints.items():
        checks.append(_probe_endpoint(url, env.get(key_env), key_env, names, timeout))
    return checks


def _probe_endpoint(url: str, key: str | None, key_env: str, names: list[str], timeout: float) -> Check:
    label = f"LLM {', '.join(names)}"
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    unkeyed = "" if key else f"; {key_env} holds no key"
    try:
        with httpx.Client(timeout=timeout, headers=headers) as client:
            listed = client.get(f"{url}/models")
            if listed.status_code in (404, 405):  # some servers serve completions only
                listed = client.post(f"{url}/chat/completions", json={
                    "model": names[0], "messages": [{"role": "user", "content": "ping"}], "max_tokens": 1})
    except httpx.HTTPError as error:
        return Check(label, "warning", f"{url} unreachable ({type(error).__name__}){unkeyed}")
    if listed.status_code in (401, 403):
        return Check(label, "warning", f"{url} reachable, but it refused the key from {key_env} "
                     f"(HTTP {listed.status_code})")
    if listed.status_code != 200:
        return Check(label, "warning", f"{url} reachable, but answered HTTP {listed.status_code}{unkeyed}")
    try:
        served = {item.get("id") for item in listed.json().get("data", []) if isinstance(item, dict)}
    except ValueError:
        served = set()
    absent = [name for name in names if served and name not in served]
    note = f"; not among its models: {', '.join(absent)}" if absent else ""
    return Check(label, "ok" if not absent else "warning", f"{url} reachable{note}{unkeyed}")
