"""MetaX hosts: the evidence that one is here, what its `mx-smi` reports, and what is still missing.

A MetaX host shows the device node /dev/mxcd, ships `mx-smi`, sets MACA_PATH (MetaX's Triton
compiles with `$MACA_PATH/mxgpu_llvm/bin/mxcc`) and runs MetaX's Triton fork, whose active target
is `maca`. PyTorch there exposes the GPU as torch.cuda.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

DEVICE_NODE = Path("dev/mxcd")
RENDER_NODES = Path("dev/dri")
# where MetaX's driver package installs mx-smi when its bin directory is not on PATH
DRIVER_BIN = Path("opt/mxdriver/bin")
MXCC = Path("mxgpu_llvm/bin/mxcc")  # under MACA_PATH: the compiler MetaX's Triton calls
MATHLIB = Path("lib/maca_mathlib.bc")  # under MACA_PATH: linked into every kernel

_BUS_ID = re.compile(r"[0-9a-fA-F]{4}:[0-9a-fA-F]{2}:[0-9a-fA-F]{2}\.[0-9a-fA-F]")
_MEMORY = re.compile(r"(\d+)\s*/\s*(\d+)\s*MiB")
_DRIVER = re.compile(r"Kernel Mode Driver Version:\s*([^\s|]+)")
_MACA = re.compile(r"MACA Version:\s*([^\s|]+)")
_SMI = re.compile(r"(?:mx-smi\s+version:|MX-SMI)\s*([0-9][^\s|]*)", re.IGNORECASE)
_ATTACHED = re.compile(r"Attached GPUs\s*:\s*(\d+)")


class MxSmiError(Exception):
    """mx-smi could not be run, failed, or printed something this parser does not understand."""


@dataclass(frozen=True)
class MetaxDevice:
    index: int
    name: str
    bus_id: str | None = None
    memory_used_mib: int | None = None
    memory_total_mib: int | None = None
    state: str | None = None  # "Available", or why it is not

    def describe(self) -> str:
        memory = f", {self.memory_total_mib} MiB" if self.memory_total_mib else ""
        return f"{self.name}{memory}"


@dataclass(frozen=True)
class SmiReport:
    """What one run of `mx-smi` (its summary table) says about the host."""

    devices: tuple[MetaxDevice, ...]
    driver_version: str | None = None
    maca_version: str | None = None
    smi_version: str | None = None
    attached: int | None = None  # the header's count, which may exceed the devices parsed

    def device(self, index: int) -> MetaxDevice | None:
        return next((device for device in self.devices if device.index == index), None)

    def versions(self) -> str:
        parts = [f"MACA {self.maca_version}" if self.maca_version else None,
                 f"driver {self.driver_version}" if self.driver_version else None]
        return ", ".join(part for part in parts if part) or "versions not reported"


def parse_mx_smi(text: str) -> SmiReport:
    """Read `mx-smi`'s summary: header versions, then two table rows per device.

    Layouts differ between mx-smi releases (2.1/2.2.4 put "GPU NAME" in the first column,
    2.2.9 puts "Board Name" there and "GPU Persist-M" in the second), so cells are matched to
    the words of the header row above them rather than to fixed positions.
    """
    rows = [_cells(line) for line in text.splitlines()]
    header_at = next((i for i, cells in enumerate(rows) if any(c.startswith("Bus-id") for c in cells)), None)
    if header_at is None:
        raise MxSmiError("mx-smi printed no device table (no 'Bus-id' column)")
    header = rows[header_at]
    second_header = rows[header_at + 1] if header_at + 1 < len(rows) else []
    devices = []
    for at in range(header_at + 1, len(rows)):
        cells = rows[at]
        if len(cells) != len(header) or not any(_BUS_ID.fullmatch(cell) for cell in cells):
            continue
        first = _fields(header, cells)
        following = rows[at + 1] if at + 1 < len(rows) else []
        second = _fields(second_header, following) if len(following) == len(second_header) else {}
        index, name = first.get("gpu", ""), first.get("name", "")
        if not index.isdigit() or not name:
            raise MxSmiError(f"mx-smi device row not understood: {' | '.join(cells)}")
        memory = next((m for m in map(_MEMORY.search, following) if m), None)
        devices.append(MetaxDevice(
            index=int(index),
            name=name,
            bus_id=first.get("bus-id"),
            memory_used_mib=int(memory.group(1)) if memory else None,
            memory_total_mib=int(memory.group(2)) if memory else None,
            state=second.get("gpu-state") or None,
        ))
    attached = _ATTACHED.search(text)
    return SmiReport(
        devices=tuple(devices),
        driver_version=_first(_DRIVER, text),
        maca_version=_first(_MACA, text),
        smi_version=_first(_SMI, text),
        attached=int(attached.group(1)) if attached else None,
    )


def _cells(line: str) -> list[str]:
    """The cells of a table row; [] for borders, separators and text outside tables."""
    line = line.strip()
    if not line.startswith("|") or not line.strip("|+-= "):
        return []
    return [cell.strip() for cell in line.strip("|").split("|")]


def _fields(header: list[str], cells: list[str]) -> dict[str, str]:
    """Each header word gets its share of the cell below it: the first word the first token,
    the last word the last token, the words between whatever is left ("MetaX C500")."""
    fields: dict[str, str] = {}
    for title, value in zip(header, cells, strict=False):
        words, tokens = title.lower().split(), value.split()
        if not words:
            continue
        if len(words) == 1:
            fields[words[0]] = value
            continue
        fields[words[0]] = tokens[0] if tokens else ""
        if len(words) == 2:
            fields[words[1]] = " ".join(tokens[1:])
        else:
            fields[words[-1]] = tokens[-1] if len(tokens) > 1 else ""
            fields[" ".join(words[1:-1])] = " ".join(tokens[1:-1])
    return fields


def _first(pattern: re.Pattern[str], text: str) -> str | None:
    match = pattern.search(text)
    return match.group(1) if match else None


def run_mx_smi(executable: str, timeout_s: float = 15.0) -> SmiReport:
    """Run `mx-smi` (no arguments: the summary table) and parse what it prints."""
    try:
        done = subprocess.run([executable], capture_output=True, text=True, timeout=timeout_s,
                              errors="replace", stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise MxSmiError(f"{executable} gave no answer within {timeout_s:g} s") from None
    except OSError as error:
        raise MxSmiError(f"cannot run {executable}: {error}") from None
    if done.returncode != 0:
        said = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
        raise MxSmiError(f"{executable} exited with code {done.returncode}: {said[0][:300]}")
    return parse_mx_smi(done.stdout)


@functools.lru_cache(maxsize=4)
def cached_report(executable: str) -> SmiReport | None:
    """The summary, once per process: results name the device and driver of every evaluation."""
    try:
        return run_mx_smi(executable)
    except MxSmiError:
        return None


@dataclass(frozen=True)
class MetaxHost:
    """The evidence of a MetaX host found here, and (when asked) what mx-smi reports."""

    device_node: Path | None = None
    mx_smi: str | None = None
    maca_path: str | None = None
    triton_target: str | None = None
    report: SmiReport | None = None
    smi_error: str | None = None
    render_nodes: Path | None = None
    maca_files: dict[str, bool] = field(default_factory=dict)  # MACA_PATH-relative file -> exists

    @property
    def present(self) -> bool:
        """Any one sign is enough: each appears only where MetaX's stack is installed."""
        return bool(self.device_node or self.mx_smi or self.maca_path or self.triton_target == "maca")

    def evidence(self) -> list[str]:
        found = []
        if self.device_node:
            found.append(f"device node {self.device_node}")
        if self.mx_smi:
            found.append(f"mx-smi at {self.mx_smi}")
        if self.maca_path:
            found.append(f"MACA_PATH={self.maca_path}")
        if self.triton_target == "maca":
            found.append("Triton's active target is maca")
        return found

    def missing(self) -> list[str]:
        """What an evaluator on this host still lacks, each with where it comes from."""
        gaps = []
        if not self.device_node:
            gaps.append("the device node /dev/mxcd (MetaX's kernel driver is not loaded)")
        if not self.render_nodes:
            gaps.append("/dev/dri (the GPU's render nodes)")
        if not self.mx_smi:
            gaps.append("mx-smi (ships with MetaX's driver, in /opt/mxdriver/bin; put it on PATH)")
        elif self.smi_error:
            gaps.append(f"a working mx-smi: {self.smi_error}")
        elif self.report is not None and not self.report.devices:
            gaps.append("a GPU in mx-smi's table (it lists none)")
        if not self.maca_path:
            gaps.append("MACA_PATH (the MACA toolkit, e.g. /opt/maca: MetaX's Triton compiles with its mxcc)")
        else:
            gaps += [f"$MACA_PATH/{name}" for name, exists in self.maca_files.items() if not exists]
        if self.triton_target != "maca":
            now = f"here it is {self.triton_target}" if self.triton_target else "here none is active"
            gaps.append(f"MetaX's Triton (3.0.0+metax..., active target maca; {now})")
        return gaps


def find_mx_smi(root: Path, env: Mapping[str, str]) -> str | None:
    """mx-smi on PATH, else where MetaX's driver or toolkit installs it."""
    found = shutil.which("mx-smi", path=env.get("PATH", os.defpath))
    if found:
        return found
    places = [root / DRIVER_BIN / "mx-smi"]
    if env.get("MACA_PATH"):
        places.append(Path(env["MACA_PATH"]) / "bin" / "mx-smi")
    return next((str(p) for p in places if p.is_file() and os.access(p, os.X_OK)), None)


def detect(
    root: Path = Path("/"),
    env: Mapping[str, str] | None = None,
    triton_target: str | None = None,
    query: bool = False,
) -> MetaxHost:
    """Look for MetaX's device node, tools and toolkit under `root`; with `query`, run mx-smi.

    `triton_target` is Triton's active compile target (evaluators.compat.active_target_backend),
    passed in because asking for it initialises the GPU driver in this process.
    """
    env = os.environ if env is None else env
    node = root / DEVICE_NODE
    render = root / RENDER_NODES
    maca_path = env.get("MACA_PATH") or None
    host = MetaxHost(
        device_node=node if node.exists() else None,
        render_nodes=render if render.exists() else None,
        mx_smi=find_mx_smi(root, env),
        maca_path=maca_path,
        triton_target=triton_target,
        maca_files={str(p): (Path(maca_path) / p).is_file() for p in (MXCC, MATHLIB)} if maca_path else {},
    )
    if query and host.mx_smi:
        try:
            report = run_mx_smi(host.mx_smi)
        except MxSmiError as error:
            return replace(host, smi_error=str(error))
        return replace(host, report=report)
    return host
