"""Differences between Triton 3.0 (MetaX's fork is built on it) and the newest Triton, in one place.

Everything version-dependent that the harness touches goes through here: counting kernel
launches, the active compile target, and `do_bench`'s arguments.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import os
from collections.abc import Callable, Mapping
from typing import Any


def triton_version() -> str:
    import triton

    return getattr(triton, "__version__", "unknown")


def interpreter_enabled() -> bool:
    return os.environ.get("TRITON_INTERPRET", "0").lower() in ("1", "true", "on", "yes")


def _launch_entry_points() -> list[tuple[type, str]]:
    """(class, method) pairs through which every `kernel[grid](...)` launch passes exactly once.

    Compiled mode, every Triton from 3.0 on (MetaX's fork included): `kernel[grid](...)` resolves
    to `JITFunction.run(grid=..., warmup=False, ...)`; Autotuner and Heuristics wrappers end there.
    Interpreter (TRITON_INTERPRET=1): newer Triton has `InterpretedFunction.run` too, but Triton 3.0
    assigns `run` per instance and sends `kernel[grid]` straight to a `GridExecutor`, so there
    `GridExecutor.__call__` is the one door both paths go through.
    """
    from triton.runtime.jit import JITFunction

    points: list[tuple[type, str]] = [(JITFunction, "run")]
    from triton.runtime import interpreter

    if "run" in vars(interpreter.InterpretedFunction):
        points.append((interpreter.InterpretedFunction, "run"))
    else:  # Triton 3.0
        points.append((interpreter.GridExecutor, "__call__"))
    return points


def _launcher_entry_point() -> tuple[type, str] | None:
    """Compiled mode: the driver's launcher class, which every compiled launch calls with its stream.

    `kernel[grid](...)` reaches it from `JITFunction.run`; a kernel compiled with `.warmup()` and
    launched through its `CompiledKernel` (`compiled[grid](...)`, `compiled.run(...)`) reaches it
    alone. From Triton 3.0 (MetaX's fork included, `__call__(self, *args, **kwargs)`) to 3.9
    (`__call__(self, gridX, gridY, gridZ, stream, function, *args)`) it is called as
    `launcher(gridX, gridY, gridZ, stream, function, ...)`. None in the interpreter, without a GPU
    driver, or in a fork whose driver has no launcher class.
    """
    if interpreter_enabled():
        return None
    try:
        from triton.runtime import driver

        launcher = driver.active.launcher_cls
    except Exception:  # no active driver (no GPU), or a driver without a launcher class
        return None
    if not isinstance(launcher, type) or not any("__call__" in vars(base) for base in launcher.__mro__):
        return None  # instances that cannot be called: not a launcher this wrapper knows
    return launcher, "__call__"


def launch_points() -> list[tuple[type, str]]:
    """Every (class, method) the harness wraps around launches: the guards scope them and watch them."""
    launcher = _launcher_entry_point()
    return _launch_entry_points() + ([launcher] if launcher is not None else [])


_NO_STREAM = object()
# the functions of torch._C that make another stream current
STREAM_SETTERS = ("_cuda_setStream", "_accelerator_setStream")


class LaunchCounter:
    """Counts Triton kernel launches by wrapping the launch entry points and, compiled, the launcher.

    Installed by trusted code before candidate code is imported; `intact()` tells whether
    the wrappers are still the ones installed (a candidate that swaps them back is caught).
    A launch through the raw C function the launcher calls (`launcher.launch`) is not seen.
    """

    def __init__(self) -> None:
        self.count = 0
        self.kernels: dict[str, int] = {}
        self._installed: dict[tuple[Any, str], Callable[..., Any]] = {}
        # while timing: the stream the timed calls must launch on, how to read the current one
        # (captured by trusted code), and the launches that went elsewhere
        self.expected_stream: int | None = None
        self.stream_of: Callable[[], int] | None = None
        self.off_stream = 0
        # inside a counted JITFunction.run: the launcher it calls must not count the launch again
        self._jit_depth = 0
        self._jit_off_stream = False

    def install(self) -> None:
        for cls, method in _launch_entry_points():
            self._wrap(cls, method, self._counting(getattr(cls, method)))
        launcher = _launcher_entry_point()
        if launcher is not None:
            cls, method = launcher
            self._wrap(cls, method, self._counting_launcher(getattr(cls, method)))
        import torch

        self.watch_stream_switches(torch._C)

    def watch_stream_switches(self, module: Any, names: tuple[str, ...] = STREAM_SETTERS) -> None:
        """Also count switches of the current stream away from the timed one while timing.

        Torch operations always run on the current stream; Python code makes another one current
        through these functions of torch._C (`torch.cuda.set_stream`, `with torch.cuda.stream(s)`,
        `torch.accelerator.set_stream`): work a timed call moved there could run under the spin,
        before the start event. Switching back is what a `with` block's exit does, and is not
        counted. A stream object's own native `__enter__` (`with torch.cuda.Stream():`) switches
        unseen (docs/threat-model.md, Known gaps).
        """
        for name in names:
            original = getattr(module, name, None)
            if original is not None:  # absent in a CPU-only build, or a torch without this door
                self._wrap(module, name, self._watching_switch(original, name))

    def _watching_switch(self, original: Callable[..., Any], name: str) -> Callable[..., Any]:
        counter = self

        def set_stream(*args: Any, **kwargs: Any) -> Any:
            result = original(*args, **kwargs)
            counter._current_stream_is_off()
            return result

        # no functools.wraps: its `__wrapped__` would hand candidate code the unwatched original
        set_stream.__name__ = set_stream.__qualname__ = name
        return set_stream

    def _wrap(self, cls: Any, method: str, wrapper: Callable[..., Any]) -> None:
        setattr(cls, method, wrapper)
        self._installed[(cls, method)] = wrapper

    def _counting(self, original: Callable[..., Any]) -> Callable[..., Any]:
        counter = self

        @functools.wraps(original)
        def run(self: Any, *args: Any, **kwargs: Any) -> Any:
            off_stream = False
            if not kwargs.get("warmup", False):  # a warm-up compiles (or, interpreted, does nothing)
                name = getattr(getattr(self, "fn", None), "__name__", None) or "kernel"
                counter._count(name)
                off_stream = counter._current_stream_is_off()
            outer = counter._jit_off_stream
            counter._jit_depth += 1
            counter._jit_off_stream = off_stream
            try:
                return original(self, *args, **kwargs)
            finally:
                counter._jit_depth -= 1
                counter._jit_off_stream = outer

        return run

    def _counting_launcher(self, original: Callable[..., Any]) -> Callable[..., Any]:
        """The launcher: counts launches that came through no JITFunction.run (a CompiledKernel launched
        directly), and holds every launch to the timed stream by the stream it is given."""
        counter = self

        @functools.wraps(original)
        def call(self: Any, *args: Any, **kwargs: Any) -> Any:
            if counter._jit_depth == 0:
                counter._count("launched directly")
            if not counter._jit_off_stream:  # one launch off the stream is one, however many doors saw it
                counter._check_stream_argument(args[3] if len(args) > 3 else kwargs.get("stream", _NO_STREAM))
            return original(self, *args, **kwargs)

        return call

    def _count(self, name: str) -> None:
        self.count += 1
        self.kernels[name] = self.kernels.get(name, 0) + 1

    def watch_stream(self, expected: int | None, stream_of: Callable[[], int] | None = None) -> None:
        """Count launches issued while another stream than `expected` is current (None: stop).

        Work on another stream is not held back by the GPU-side spin before a timed call: it can
        finish before the start event and escape the figures (docs/threat-model.md).
        """
        self.expected_stream, self.off_stream = expected, 0
        if stream_of is not None:
            self.stream_of = stream_of

    def _current_stream_is_off(self) -> bool:
        """A launch about to go to the current stream, while another than the timed one is current."""
        if self.expected_stream is None or self.stream_of is None:
            return False
        try:
            current = self.stream_of()
        except Exception:  # no stream to ask about: nothing to compare
            return False
        if current != self.expected_stream:
            self.off_stream += 1
            return True
        return False

    def _check_stream_argument(self, stream: Any) -> None:
        """The stream a launcher was handed: whatever current stream a replaced getter reported."""
        if self.expected_stream is None or stream is _NO_STREAM:
            return
        # the value the C launcher reads, not what an int subclass says of itself
        value = int.__int__(stream) if issubclass(type(stream), int) else None
        if value != self.expected_stream:
            self.off_stream += 1

    def intact(self) -> bool:
        return all(vars(cls).get(method) is wrapper for (cls, method), wrapper in self._installed.items())

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


def do_bench_arguments(parameters: Mapping[str, Any], warmup_ms: int, rep_ms: int) -> dict[str, Any]:
    """Keyword arguments asking `triton.testing.do_bench` (given its parameters) for the median.

    Triton 3.0 (MetaX's fork included) has `fast_flush`, where True (its default) flushes L2 with
    a 256 MB int32 buffer as later releases always do; they dropped the parameter.
    """
    kwargs: dict[str, Any] = {"warmup": warmup_ms, "rep": rep_ms}
    if "return_mode" in parameters:
        kwargs["return_mode"] = "median"
    else:
        kwargs["quantiles"] = [0.5]
    if "fast_flush" in parameters:
        kwargs["fast_flush"] = True
    return kwargs


def do_bench(fn: Callable[[], Any], warmup_ms: int = 25, rep_ms: int = 100) -> float:
    """Median milliseconds from `triton.testing.do_bench`, whatever its signature."""
    from triton.testing import do_bench as triton_do_bench

    kwargs = do_bench_arguments(inspect.signature(triton_do_bench).parameters, warmup_ms, rep_ms)
    result = triton_do_bench(fn, **kwargs)
    return float(result[0] if isinstance(result, (list, tuple)) else result)


# the compute capability of a worker's NVIDIA GPU, set by the judge (see warm_compiler)
CAPABILITY_VARIABLE = "KERNELSMITH_GPU_CAPABILITY"


def warm_compiler(capability: int) -> bool:
    """Compile a small kernel with `tl.dot` for an NVIDIA GPU of this compute capability (90: H100,
    H200), on the CPU alone: no CUDA context, no launch.

    A process's first Triton compilation also pays for what every later one reuses (the NVIDIA
    backend's set-up, the first runs of its tools): about half a second on an H200 host with
    Triton 3.6. A worker does it before it says `ready`, so its candidate's first compilation does
    not. The driver's C helpers are built too (a C compiler run) where a GPU driver is installed.
    Returns whether the kernel compiled; on any failure the candidate's first compilation simply
    pays as before.
    """
    try:
        import triton
        from triton.backends.compiler import GPUTarget

        from evaluators.warmup_kernel import warmup_kernel
    except Exception:
        return False
    with contextlib.suppress(Exception):  # no libcuda here: the first launch builds them, as before
        from triton.backends.nvidia.driver import CudaUtils

        CudaUtils()
    target = GPUTarget("cuda", int(capability), 32)
    try:  # Triton 3.3 on: named signature, constexprs in it
        source = triton.compiler.ASTSource(
            fn=warmup_kernel, signature={"x_ptr": "*fp32", "y_ptr": "*fp32", "n": "i32", "BLOCK": "constexpr"},
            constexprs={"BLOCK": 16})
    except TypeError:  # Triton 3.0: positional signature, constants apart
        source = triton.compiler.ASTSource(fn=warmup_kernel, signature={0: "*fp32", 1: "*fp32", 2: "i32"},
                                           constants={3: 16})
    try:
        triton.compile(source, target=target)
    except Exception:
        return False
    return True


def exact_float32() -> None:
    """References and candidates compute float32 in float32: no TF32 in cuBLAS or cuDNN.

    PyTorch lets cuDNN convolutions use TF32 by default; a reference computed that way misses
    an exact kernel by more than float32's tolerance.
    """
    import torch

    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
