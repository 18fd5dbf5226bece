"""Backends: which one runs here, the device it uses, and the environment its workers get.

`triton-nvidia` (CUDA GPUs), `maca-metax` (MetaX GPUs, exposed by PyTorch as torch.cuda) and
`triton-interpret` (CPU, TRITON_INTERPRET=1, correctness only).
"""

from __future__ import annotations

import functools
import os
import platform
import socket
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from evaluators import metax
from evaluators.compat import CAPABILITY_VARIABLE
from evaluators.protocol import Backend, Environment


class BackendUnavailable(Exception):
    """The requested backend cannot run on this host."""


@functools.cache
def compute_capability(device_index: int) -> int | None:
    """An NVIDIA GPU's compute capability as Triton writes it (9.0 -> 90), asked of the driver by
    this (trusted) process; None without one."""
    try:
        import torch

        if not torch.cuda.is_available() or device_index >= torch.cuda.device_count():
            return None
        major, minor = torch.cuda.get_device_capability(device_index)
    except Exception:
        return None
    return major * 10 + minor


@dataclass(frozen=True)
class BackendSpec:
    backend: Backend
    device_index: int | None  # host-side index; None on the CPU

    @property
    def measures_time(self) -> bool:
        return self.backend != Backend.triton_interpret

    @property
    def torch_device(self) -> str:
        return "cpu" if self.device_index is None else f"cuda:{self.device_index}"

    def worker_env(self) -> dict[str, str]:
        """Variables that pin a worker to this backend's device."""
        if self.backend == Backend.triton_interpret:
            return {"TRITON_INTERPRET": "1", "CUDA_VISIBLE_DEVICES": ""}
        if self.backend == Backend.maca_metax:
            index = visible_device(self.device_index or 0, METAX_VISIBLE)
            # sources disagree on which variable MACA reads, so both say the same; MACA refuses a
            # second process on a GPU unless MPS mode is on, and the judge already holds this one
            return {"MACA_VISIBLE_DEVICES": index, "CUDA_VISIBLE_DEVICES": index,
                    "MACA_MPS_MODE": "1", "TRITON_INTERPRET": "0"}
        env = {"CUDA_VISIBLE_DEVICES": visible_device(self.device_index or 0), "TRITON_INTERPRET": "0"}
        capability = compute_capability(self.device_index or 0)
        if capability is not None:  # the worker compiles for it at start-up, before it may touch the GPU
            env[CAPABILITY_VARIABLE] = str(capability)
        return env

    def container_env(self) -> dict[str, str]:
        """worker_env for a worker inside a container given this backend's docker flags.

        An NVIDIA container gets only the requested GPU, which it numbers 0; a MetaX container
        gets every GPU's device files, so the host-wide index still applies.
        """
        env = self.worker_env()
        if self.backend == Backend.triton_nvidia:
            env["CUDA_VISIBLE_DEVICES"] = "0"
        return env

    def docker_devices(self) -> list[str]:
        """Device files a container needs, as docker's "HOST:CONTAINER:PERMISSIONS" strings.

        MetaX GPUs are reached through files (`--device /dev/dri --device /dev/mxcd`); every
        GPU's nodes are passed and MACA_VISIBLE_DEVICES (worker_env) picks the one used.
        NVIDIA GPUs come through docker_device_requests instead; the CPU needs none.
        """
        if self.backend == Backend.maca_metax:
            return [f"/{node}:/{node}:rwm" for node in (metax.RENDER_NODES, metax.DEVICE_NODE)]
        return []

    def docker_group_add(self) -> list[str]:
        """Groups a container's user must join: MetaX's device files belong to `video`."""
        return ["video"] if self.backend == Backend.maca_metax else []

    def docker_device_requests(self) -> list[dict[str, Any]]:
        """GPU requests (`--gpus device=N`) in the docker SDK's DeviceRequest keyword form.

        Only this backend's GPU, by its host-wide index: inside the container it is device 0,
        which is why worker_env's CUDA_VISIBLE_DEVICES does not apply there.
        """
        if self.backend != Backend.triton_nvidia:
            return []
        return [{"driver": "nvidia", "device_ids": [visible_device(self.device_index or 0)],
                 "capabilities": [["gpu"]]}]


CUDA_VISIBLE = ("CUDA_VISIBLE_DEVICES",)
METAX_VISIBLE = ("MACA_VISIBLE_DEVICES", "CUDA_VISIBLE_DEVICES")


def visible_device(index: int, variables: tuple[str, ...] = CUDA_VISIBLE) -> str:
    """The device a worker must see for this process's device `index` (torch's numbering).

    A judge started with CUDA_VISIBLE_DEVICES=2,3 calls physical GPU 2 "0"; its worker, whose
    environment is built afresh, must be given "2", or it would run on another GPU. The first
    of `variables` set in this process is the one that numbered its devices (on MetaX,
    MACA_VISIBLE_DEVICES, else CUDA_VISIBLE_DEVICES).
    """
    setting = next((os.environ[name] for name in variables if os.environ.get(name, "").strip()), "")
    visible = [part.strip() for part in setting.split(",") if part.strip()]
    return visible[index] if index < len(visible) else str(index)


def metax_present(root: Path = Path("/")) -> bool:
    """MetaX hosts show /dev/mxcd, ship mx-smi, or set MACA_PATH."""
    return metax.detect(root).present


def cuda_available() -> bool:
    import torch

    return bool(torch.cuda.is_available())


@dataclass(frozen=True)
class HostFacts:
    """What choosing a backend looks at: the GPUs torch sees and the signs of a MetaX host."""

    gpu_count: int
    metax: metax.MetaxHost

    @classmethod
    def probe(cls, root: Path = Path("/"), env: Mapping[str, str] | None = None) -> HostFacts:
        import torch

        gpus = int(torch.cuda.device_count()) if torch.cuda.is_available() else 0
        target = None
        if gpus:  # asking Triton for its target initialises the GPU driver: only where one is
            from evaluators.compat import active_target_backend

            target = active_target_backend()
        return cls(gpus, metax.detect(root, env, triton_target=target))


def resolve(backend: Backend, device_index: int | None = None, facts: HostFacts | None = None) -> BackendSpec:
    """Pick the concrete backend for a request on this host (`facts`: probed when not given)."""
    backend = Backend(backend)
    if backend == Backend.triton_interpret:
        return BackendSpec(backend, None)
    facts = facts or HostFacts.probe()
    if backend == Backend.auto:
        if not facts.gpu_count:
            return BackendSpec(Backend.triton_interpret, None)
        backend = Backend.maca_metax if facts.metax.present else Backend.triton_nvidia
    if not facts.gpu_count:
        if backend == Backend.maca_metax and facts.metax.present:
            raise BackendUnavailable(
                f"backend maca-metax: this is a MetaX host ({'; '.join(facts.metax.evidence())}), but torch "
                "sees no GPU: install MetaX's PyTorch build (it exposes the GPU as torch.cuda)"
            )
        raise BackendUnavailable(f"backend {backend.value} needs a GPU, and torch sees none on this host")
    if backend == Backend.maca_metax and not facts.metax.present:
        raise BackendUnavailable(
            "backend maca-metax: no sign of a MetaX host here (no /dev/mxcd, no mx-smi, MACA_PATH unset, "
            "Triton's target is not maca); use triton-nvidia or auto"
        )
    index = device_index if device_index is not None else 0
    if not 0 <= index < facts.gpu_count:
        raise BackendUnavailable(f"GPU {index} does not exist: torch sees {facts.gpu_count} GPU(s), numbered from 0")
    return BackendSpec(backend, index)


def describe(spec: BackendSpec) -> Environment:
    """What the result reports about where it was measured."""
    import torch

    from evaluators.compat import triton_version

    env = Environment(
        backend=spec.backend.value,
        torch=torch.__version__,
        triton=triton_version(),
        python=platform.python_version(),
        host=socket.gethostname(),
    )
    if spec.device_index is None:
        env.device = f"cpu ({platform.processor() or platform.machine()}, Triton interpreter)"
    elif spec.backend == Backend.maca_metax:
        report = _metax_report()
        host_index = visible_device(spec.device_index, METAX_VISIBLE)
        device = report.device(int(host_index)) if report and host_index.isdigit() else None
        env.device = torch.cuda.get_device_name(spec.device_index) or (device.name if device else "MetaX GPU")
        env.driver = report.versions() if report else None  # MACA and kernel driver, as mx-smi reports them
    else:
        env.device = torch.cuda.get_device_name(spec.device_index)
        env.driver = _driver_version()
    return env


def _metax_report() -> metax.SmiReport | None:
    found = metax.find_mx_smi(Path("/"), os.environ)
    return metax.cached_report(found) if found else None


def _driver_version() -> str | None:
    try:
        import torch

        return f"cuda {torch.version.cuda}" if torch.version.cuda else None
    except Exception:
        return None


def python_executable() -> str:
    return sys.executable
