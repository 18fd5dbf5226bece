"""Differences between Triton 3.0 (MetaX's fork is built on it) and the newest Triton, in one place.

Everything version-dependent that the harness touches goes through here: counting kernel
launches, the active compile target, and `do_bench`'s arguments.
"""

from __future__ import annotations

import functools
import inspect
import os
from collections.abc import Callable
from typing import Any


def triton_version() -> str:
    import triton

    return getattr(triton, "__version__", "unknown")


def interpreter_enabled() -> bool:
    return os.environ.get("TRITON_INTERPRET", "0").lower() in ("1", "true", "on", "yes")


def _launch_classes() -> list[type]:
    """Classes whose `run` method is the single entry point of a kernel launch.

    `kernel[grid](...)` resolves to `self.run(grid=..., warmup=False, ...)` on a JITFunction
    (compiled mode) or an InterpretedFunction (TRITON_INTERPRET=1) in every Triton from 3.0 on;
    Autotuner and Heuristics wrappers end in one of these too.
    """
    from triton.runtime.jit import JITFunction

    classes: list[type] = [JITFunction]
    try:
        from triton.runtime.interpreter import InterpretedFunction

        classes.append(InterpretedFunction)
    except ImportError:  # pragma: no cover - every supported Triton has the interpreter
        pass
    return classes


class LaunchCounter:
    """Counts Triton kernel launches by wrapping `run` on the launch classes.

    Installed by trusted code before candidate code is imported; `intact()` tells whether
    the wrappers are still the ones installed (a candidate that swaps them back is caught).
    """

    def __init__(self) -> None:
        self.count = 0
        self.kernels: dict[str, int] = {}
        self._installed: dict[type, Callable[..., Any]] = {}

    def install(self) -> None:
        for cls in _launch_classes():
            wrapper = self._counting(cls.run)
            cls.run = wrapper
            self._installed[cls] = wrapper

    def _counting(self, original: Callable[..., Any]) -> Callable[..., Any]:
        counter = self

        @functools.wraps(original)
        def run(self: Any, *args: Any, **kwargs: Any) -> Any:
            if not kwargs.get("warmup", False):
                counter.count += 1
                name = getattr(getattr(self, "fn", None), "__name__", None) or "kernel"
                counter.kernels[name] = counter.kernels.get(name, 0) + 1
            return original(self, *args, **kwargs)

        return run

    def intact(self) -> bool:
        return all(cls.__dict__.get("run") is wrapper for cls, wrapper in self._installed.items())

    def reset(self) -> None:
        self.count = 0
        self.kernels = {}


def active_target_backend() -> str | None:
    """The compile target of Triton's active driver ('cuda', 'hip', 'maca', ...), if any."""
    try:
        from triton.runtime import driver

        return str(driver.active.get_current_target().backend)
    except Exception:  # no GPU driver: CPU-only machine or interpreter
        return None


def do_bench(fn: Callable[[], Any], warmup_ms: int = 25, rep_ms: int = 100) -> float:
    """Median milliseconds from `triton.testing.do_bench`, whatever its signature."""
    from triton.testing import do_bench as triton_do_bench

    parameters = inspect.signature(triton_do_bench).parameters
    kwargs: dict[str, Any] = {"warmup": warmup_ms, "rep": rep_ms}
    if "return_mode" in parameters:
        kwargs["return_mode"] = "median"
        return float(triton_do_bench(fn, **kwargs))
    kwargs["quantiles"] = [0.5]  # Triton 3.0: quantiles instead of return_mode
    result = triton_do_bench(fn, **kwargs)
    return float(result[0] if isinstance(result, (list, tuple)) else result)


def exact_float32() -> None:
    """References and candidates compute float32 in float32: no TF32 in cuBLAS or cuDNN.

    PyTorch lets cuDNN convolutions use TF32 by default; a reference computed that way misses
    an exact kernel by more than float32's tolerance.
    """
    import torch

    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
