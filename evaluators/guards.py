"""Runtime guards in the worker: what candidate code may not do while it runs, and what it left behind.

An audit hook refuses processes, sockets, ctypes, gc and frame introspection, dynamic code and
file access outside the worker's directory when candidate code asks for them; the candidate
module gets builtins whose `__import__` admits only the allowed modules; snapshots catch
replaced functions, signal handlers and threads left running. Defense in depth behind the
static checks and the sandbox, not a boundary: code sharing a process with its guard can,
with effort, get around it; the sandbox is what holds then.
"""

from __future__ import annotations

import builtins
import os
import signal
import sys
import sysconfig
import threading
import types
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# Modules a candidate may import: a Triton kernel and its PyTorch wrapper need nothing else.
ALLOWED_MODULES = frozenset(
    {
        "torch", "torch.nn", "torch.nn.functional", "torch.nn.init", "triton", "triton.language",
        "math", "typing", "functools", "itertools", "dataclasses", "enum", "numbers", "collections",
        "collections.abc", "operator", "__future__",
    }
)
ALLOWED_PREFIXES = ("triton.language.",)  # libdevice and the other extras live below it


# Never, even when torch's C code imports on the candidate's behalf (see candidate_builtins).
FORBIDDEN_ROOTS = frozenset(
    {
        "os", "posix", "sys", "subprocess", "multiprocessing", "threading", "_thread", "concurrent", "socket",
        "_socket", "ctypes", "_ctypes", "cffi", "signal", "gc", "importlib", "builtins", "marshal", "pickle",
        "shutil", "resource", "mmap", "pty", "runpy", "code", "evaluators",
    }
)


def module_allowed(name: str) -> bool:
    return name in ALLOWED_MODULES or name.startswith(ALLOWED_PREFIXES)


# audit event -> the rule it breaks when candidate code raises it
EVENT_RULES = {
    "subprocess.Popen": "process-spawn", "os.system": "process-spawn", "os.exec": "process-spawn",
    "os.spawn": "process-spawn", "os.posix_spawn": "process-spawn", "os.fork": "process-spawn",
    "os.forkpty": "process-spawn", "pty.spawn": "process-spawn",
    "os.kill": "signal", "os.killpg": "signal", "signal.pthread_kill": "signal",
    "gc.get_objects": "gc-introspection", "gc.get_referrers": "gc-introspection",
    "gc.get_referents": "gc-introspection",
    "sys._getframe": "frame-introspection", "sys._current_frames": "frame-introspection",
    "object.__getattr__": "frame-introspection",
    "sys.settrace": "tracing", "sys.setprofile": "tracing", "sys.addaudithook": "tracing",
    "exec": "dynamic-code", "compile": "dynamic-code", "code.__new__": "dynamic-code",
    "function.__new__": "dynamic-code", "marshal.loads": "dynamic-code",
    "open": "file-access", "os.remove": "file-access", "os.rename": "file-access", "os.rmdir": "file-access",
    "os.mkdir": "file-access", "os.symlink": "file-access", "os.link": "file-access", "os.chmod": "file-access",
    "os.chown": "file-access", "os.truncate": "file-access", "os.chdir": "file-access",
    "resource.setrlimit": "resource-limits", "resource.prlimit": "resource-limits",
}
EVENT_PREFIXES = {"socket.": "network", "ctypes.": "ctypes", "shutil.": "file-access"}
# Judged by the innermost frame outside the standard library: libraries (Triton's @jit reading
# a kernel's source, the import system) legitimately do these on the candidate's behalf.
DIRECT_RULES = frozenset({"frame-introspection", "dynamic-code"})
DEVICE_FILES = ("/dev/null", "/dev/zero", "/dev/urandom", "/dev/random")
MODULE_SUFFIXES = (".py", ".pyc", ".so", ".pth")
WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC


class Refused(PermissionError):
    """What candidate code gets for a refused action."""


@dataclass
class Violation:
    rule: str
    message: str
    line: int | None

    def as_finding(self) -> dict[str, Any]:
        return {"rule": self.rule, "message": self.message, "line": self.line}


def _event_rule(event: str) -> str | None:
    rule = EVENT_RULES.get(event)
    if rule is None:
        for prefix, prefixed in EVENT_PREFIXES.items():
            if event.startswith(prefix):
                return prefixed
    return rule


def _root(path: str) -> str:
    return os.path.realpath(path).rstrip(os.sep) + os.sep


class Guard:
    """Installed once per worker, before any candidate code is imported."""

    def __init__(self, workdir: Path) -> None:
        import torch
        import triton

        import evaluators

        self.workdir = _root(str(workdir))
        self.candidate_file: str | None = None
        self.violations: list[Violation] = []
        self.launch_depth = 0
        self.recorder: Any = None  # an OpRecorder, paused during Triton launches
        paths = sysconfig.get_paths()
        self.stdlib = tuple({_root(paths["stdlib"]), _root(paths["platstdlib"])})
        self.harness = _root(os.path.dirname(evaluators.__file__))
        self.triton = _root(os.path.dirname(triton.__file__))
        install = {paths["purelib"], paths["platlib"], sys.prefix, sys.base_prefix, sys.exec_prefix,
                   os.path.dirname(torch.__file__), os.path.dirname(triton.__file__)}
        self.readable = (self.workdir, *{_root(p) for p in install if p})
        self._local = threading.local()
        self._snapshot: dict[str, tuple[Any, dict[str, Any]]] = {}
        self._signals: dict[int, Any] = {}
        self._threads: set[threading.Thread] = set()
        self._os_threads = 0

    # -- installation ----------------------------------------------------------------------

    def install(self) -> None:
        from evaluators.compat import launch_points

        for cls, method in [*launch_points(), *((tuner, "run") for tuner in _tuner_classes())]:
            setattr(cls, method, self._scoped(getattr(cls, method)))
        os._exit = self._refusing("os._exit", os._exit)  # type: ignore[assignment]
        os.abort = self._refusing("os.abort", os.abort)  # type: ignore[assignment]
        sys.addaudithook(self._hook)

    def baseline(self) -> None:
        """What must not change while candidate code runs: taken last, just before it is imported."""
        self._snapshot = {name: (space, dict(vars(space))) for name, space in _watched_namespaces().items()}
        self._signals = _signal_handlers()

    def enter(self) -> None:
        """Candidate code is about to run (its import, or a forward): count the threads."""
        self._threads = set(threading.enumerate())
        self._os_threads = _os_thread_count()

    def leave(self) -> None:
        """It returned: a thread it started and left running is a stray (the harness's own don't count)."""
        threads = [t.name for t in threading.enumerate() if t not in self._threads and t.is_alive()]
        extra = _os_thread_count() - self._os_threads
        if threads or extra > 0:
            what = f"Python threads {threads}" if threads else f"{extra} more OS thread(s)"
            self.record("stray-thread", f"left {what} running", None)

    def candidate_builtins(self) -> dict[str, Any]:
        """The candidate module's builtins: imports limited to ALLOWED_MODULES, no debugger or stdin."""
        guarded = dict(vars(builtins))
        real_import = builtins.__import__
        guard = self

        def __import__(name: str, globals: Any = None, locals: Any = None, fromlist: Any = (), level: int = 0) -> Any:
            if isinstance(fromlist, list):
                # PyImport_Import: C code (torch's) importing for itself, with the calling frame's builtins
                refused = [name] if name.partition(".")[0] in FORBIDDEN_ROOTS else []
            elif level:
                refused = [name or "."]
            else:
                wanted = [name] + [f"{name}.{item}" for item in fromlist or () if f"{name}.{item}" in sys.modules]
                refused = [module for module in wanted if not module_allowed(module)]
            if refused:
                guard.record("forbidden-import", f"candidate code imported {refused[0]!r}", guard._candidate_line())
                raise ImportError(f"candidate code may not import {refused[0]!r}")
            return real_import(name, globals, locals, fromlist, level)

        guarded["__import__"] = __import__
        for name in ("breakpoint", "input", "help"):
            guarded.pop(name, None)
        return guarded

    # -- reports ------------------------------------------------------------------------

    def findings(self) -> list[dict[str, Any]]:
        """What the candidate did or left behind: violations since the last report (consumed), and
        functions and signal handlers changed since the baseline."""
        found = [v.as_finding() for v in self.violations]
        self.violations = []
        replaced = self._replaced()
        if replaced:
            found.append({"rule": "monkey-patch", "message": f"replaced {', '.join(replaced[:5])}", "line": None})
        # none to compare with before baseline(): a worker whose task failed to load reports before it
        changed = [_signal_name(s) for s, h in _signal_handlers().items() if self._signals and self._signals.get(s) is not h]
        if changed:
            found.append({"rule": "signal-handler", "message": f"installed handlers for {', '.join(changed)}", "line": None})
        return found

    def _replaced(self) -> list[str]:
        replaced = []
        for name, (space, before) in self._snapshot.items():
            now = vars(space)
            for key, value in before.items():
                current = now.get(key, _MISSING)
                # functions, classes and modules only: modules keep plain state (flags, caches) too
                if current is not value and (_behaviour(value) or _behaviour(current)):
                    replaced.append(f"{name}.{key}")
        return replaced

    # -- the audit hook -----------------------------------------------------------------

    def _hook(self, event: str, args: tuple[Any, ...]) -> None:
        rule = _event_rule(event)
        if rule is None or self.candidate_file is None or getattr(self._local, "busy", False):
            return
        self._local.busy = True
        try:
            frame = sys._getframe(1)
            culprit = self._direct(frame) if rule in DIRECT_RULES else self._acting(frame)
            if culprit is None or (rule == "file-access" and self._file_allowed(event, args)):
                return
            detail = event if event != "object.__getattr__" else f"access to .{args[1]}"
            if rule == "file-access" and args:
                detail = f"{event} {args[0]!r}"
            self.record(rule, f"candidate code attempted {detail}", culprit.f_lineno)
        finally:
            self._local.busy = False
        raise Refused(f"kernelsmith: {rule}: {event} is not allowed in a candidate")

    def _direct(self, frame: types.FrameType | None) -> types.FrameType | None:
        """The candidate's frame if it is the innermost one outside the standard library."""
        while frame is not None:
            name = frame.f_code.co_filename
            if name == self.candidate_file:
                return frame
            if not self._stdlib(name):
                return None
            frame = frame.f_back
        return None

    def _acting(self, frame: types.FrameType | None) -> types.FrameType | None:
        """The candidate's frame if candidate code is behind this action, directly or through libraries.

        Walking outwards, the harness's own frames (the worker, the launch wrappers) end the search:
        Triton compiling inside a launch acts for the harness, torch.load called by a candidate does not.
        """
        innermost = True
        while frame is not None:
            name = frame.f_code.co_filename
            if name == self.candidate_file:
                return frame
            if name.startswith(self.harness):
                return None
            if innermost and not self._stdlib(name):
                # the interpreter's tl.* run inside a launch, called from the kernel's own frames
                if self.launch_depth and name.startswith(self.triton):
                    return None
                innermost = False
            frame = frame.f_back
        return None

    def _stdlib(self, name: str) -> bool:
        if name.startswith("<frozen "):
            return not name.startswith("<frozen importlib")
        # a venv's platstdlib holds its site-packages: packages are never the standard library
        return name.startswith(self.stdlib) and "-packages" + os.sep not in name

    def _file_allowed(self, event: str, args: tuple[Any, ...]) -> bool:
        if event == "open":
            path, mode, flags = (args + (None, None, 0))[:3]
            write = any(c in str(mode or "") for c in "wax+") or bool((flags or 0) & WRITE_FLAGS)
            return self._inside(path, write)
        if event in ("os.mkdir", "os.remove", "os.rmdir", "os.rename", "os.truncate", "os.chmod"):
            return all(self._inside(path, write=True) for path in args[:2] if isinstance(path, (str, bytes, os.PathLike)))
        return False

    def _inside(self, path: Any, write: bool) -> bool:
        if not isinstance(path, (str, bytes, os.PathLike)):
            return False  # a raw descriptor: the channel's socket is one
        resolved = os.path.realpath(os.fsdecode(path))
        if write:
            return (resolved + os.sep).startswith(self.workdir)
        if resolved in DEVICE_FILES or (resolved + os.sep).startswith(self.readable):
            return True
        # an import the candidate triggers reads modules from every entry of sys.path
        return resolved.endswith(MODULE_SUFFIXES) and any((resolved + os.sep).startswith(_root(p)) for p in sys.path if p)

    def record(self, rule: str, message: str, line: int | None) -> None:
        if len(self.violations) < 20:
            self.violations.append(Violation(rule, message, line))

    def _candidate_line(self) -> int | None:
        frame = sys._getframe(1) if self.candidate_file else None
        while frame is not None and frame.f_code.co_filename != self.candidate_file:
            frame = frame.f_back
        return frame.f_lineno if frame is not None else None

    # -- wrappers -----------------------------------------------------------------------

    def _scoped(self, run: Callable[..., Any]) -> Callable[..., Any]:
        """A launch: Triton may compile (subprocesses, files) and its ops are not the candidate's."""
        guard = self

        def launch(self: Any, *args: Any, **kwargs: Any) -> Any:
            guard.launch_depth += 1
            recorder = guard.recorder
            if recorder is not None:
                recorder.paused += 1
            try:
                return run(self, *args, **kwargs)
            finally:
                guard.launch_depth -= 1
                if recorder is not None:
                    recorder.paused -= 1

        launch.__wrapped__ = run  # type: ignore[attr-defined]
        return launch

    def _refusing(self, name: str, original: Callable[..., Any]) -> Callable[..., Any]:
        guard = self

        def refusing(*args: Any) -> Any:
            if guard.candidate_file is not None:
                frame = guard._acting(sys._getframe(1))
                if frame is not None:
                    guard.record("process-exit", f"candidate code called {name}", frame.f_lineno)
                    raise Refused(f"kernelsmith: {name} is not allowed in a candidate")
            return original(*args)

        return refusing


_MISSING = object()


def _behaviour(value: Any) -> bool:
    return callable(value) or isinstance(value, (types.ModuleType, staticmethod, classmethod, property))


def _tuner_classes() -> list[type]:
    try:
        from triton.runtime.autotuner import Autotuner, Heuristics
    except ImportError:  # pragma: no cover - every supported Triton has both
        return []
    return [Autotuner, Heuristics]


def _watched_namespaces() -> dict[str, Any]:
    """Modules and classes whose functions a cheat would replace: timing, comparison, launches, the harness."""
    import time

    import torch
    import torch.nn.functional
    import triton
    import triton.testing

    spaces: dict[str, Any] = {
        "builtins": builtins, "time": time, "os": os, "torch": torch, "torch.Tensor": torch.Tensor,
        "torch.nn.functional": torch.nn.functional, "torch.nn.Module": torch.nn.Module, "torch.cuda": torch.cuda,
        "torch.cuda.Event": torch.cuda.Event, "torch.cuda.Stream": torch.cuda.Stream, "torch.testing": torch.testing,
        # not triton.language: the interpreter patches its functions around every launch
        "triton": triton, "triton.testing": triton.testing,
    }
    for name in ("TensorBase", "_TensorBase", "_CudaEventBase", "_CudaStreamBase"):
        if hasattr(torch._C, name):
            spaces[f"torch._C.{name}"] = getattr(torch._C, name)
    for module_name, module in list(sys.modules.items()):
        spec_name = getattr(getattr(module, "__spec__", None), "name", "") or ""
        if module_name == "__main__" and spec_name.startswith("evaluators."):
            module_name = spec_name  # the worker itself runs as __main__
        if module_name.startswith("evaluators.") and module is not None:
            spaces[module_name] = module
            for key, value in vars(module).items():
                if isinstance(value, type) and value.__module__ in (module_name, "__main__"):
                    spaces[f"{module_name}.{key}"] = value
    from evaluators.compat import launch_points

    for cls in [*(cls for cls, _ in launch_points()), *_tuner_classes()]:
        spaces[f"{cls.__module__}.{cls.__qualname__}"] = cls
    return spaces


def _signal_handlers() -> dict[int, Any]:
    handlers = {}
    for signum in signal.valid_signals():
        if signum in (signal.SIGKILL, signal.SIGSTOP):
            continue
        try:
            handlers[int(signum)] = signal.getsignal(signum)
        except (ValueError, OSError):
            continue
    return handlers


def _signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:  # real-time signals past SIGRTMIN have no name of their own
        return f"signal {signum}"


def _os_thread_count() -> int:
    try:
        return len(os.listdir("/proc/self/task"))
    except OSError:
        return threading.active_count()
