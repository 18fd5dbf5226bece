"""Backends: which one runs here, the device it uses, and the environment its workers get.

`triton-nvidia` (CUDA GPUs), `maca-metax` (MetaX GPUs, exposed by PyTorch as torch.cuda) and
`triton-interpret` (CPU, TRITON_INTERPRET=1, correctness only).
"""

from __future__ import annotations

import os
import platform
import shutil
import socket
import sys
from dataclasses import dataclass
from pathlib import Path

from evaluators.protocol import Backend, Environment


class BackendUnavailable(Exception):
    """The requested backend cannot run on this host."""


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
        index = visible_device(self.device_index or 0)
        env = {"CUDA_VISIBLE_DEVICES": index, "TRITON_INTERPRET": "0"}
        if self.backend == Backend.maca_metax:
            env["MACA_VISIBLE_DEVICES"] = index  # sources disagree on which one MACA reads
        return env


def visible_device(index: int) -> str:
    """The device a worker must see for this process's device `index` (torch's numbering).

    A judge started with CUDA_VISIBLE_DEVICES=2,3 calls physical GPU 2 "0"; its worker, whose
    environment is built afresh, must be given "2", or it would run on another GPU.
    """
    visible = [part.strip() for part in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if part.strip()]
    return visible[index] if index < len(visible) else str(index)


def metax_present(root: Path = Path("/")) -> bool:
    """MetaX hosts show /dev/mxcd, ship mx-smi, or set MACA_PATH."""
    return (
        (root / "dev" / "mxcd").exists()
        or shutil.which("mx-smi") is not None
        or bool(os.environ.get("MACA_PATH"))
    )


def cuda_available() -> bool:
    import torch

    return bool(torch.cuda.is_available())


def resolve(backend: Backend, device_index: int | None = None) -> BackendSpec:
    """Pick the concrete backend for a request on this host."""
    backend = Backend(backend)
    if backend == Backend.auto:
        if cuda_available():
            from evaluators.compat import active_target_backend

            target = active_target_backend()
            backend = Backend.maca_metax if target == "maca" or metax_present() else Backend.triton_nvidia
        else:
            backend = Backend.triton_interpret
    if backend == Backend.triton_interpret:
        return BackendSpec(backend, None)
    if not cuda_available():
        raise BackendUnavailable(f"backend {backend.value} needs a GPU, and torch sees none on this host")
    return BackendSpec(backend, device_index if device_index is not None else 0)


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
    else:
        env.device = torch.cuda.get_device_name(spec.device_index)
        env.driver = _driver_version()
    return env


def _driver_version() -> str | None:
    try:
        import torch

        return f"cuda {torch.version.cuda}" if torch.version.cuda else None
    except Exception:
        return None


def python_executable() -> str:
    return sys.executable
