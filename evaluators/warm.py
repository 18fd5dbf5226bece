"""A warm pool of pre-started sandboxed workers (torch and Triton imported, GPU set up).

Each worker still evaluates exactly one candidate and exits: the pool only moves start-up out
of the candidate's path. A worker starts on the CPU alone (imports, a first Triton compilation);
the pool then has it set up its GPU (context, clock) at a moment nothing is timed on that device.
Judges use it through `Judge(workers=pool)`.
"""

from __future__ import annotations

import os
import resource
import threading
import time
from collections import Counter, deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from evaluators.backends import BackendSpec
from evaluators.sandbox import Limits, ProcessSandbox, WorkerHandle, WorkerStartError

# Warm workers start with the most CPU any request may ask for (time_limit_s <= 3600); acquire()
# lowers the limit to what the candidate's request allows, counted from the moment it is handed out.
WARM_LIMITS = Limits(wall_s=3600.0, cpu_s=3600 * 4 + 60)
MAX_BACKOFF_S = 30.0
READY_TIMEOUT_S = 180.0  # from connecting to `ready`: torch import, a first Triton compilation
SETUP_TIMEOUT_S = 120.0  # from `setup` to `ready` again: a CUDA context, the clock, Triton's driver


@dataclass
class WarmStats:
    started: int = 0  # workers pre-started successfully
    hits: int = 0  # candidates that got a pre-started worker
    misses: int = 0  # candidates that had to start one cold
    discarded: int = 0  # pre-started workers found dead, or unusable for a request's limits
    set_up: int = 0  # workers whose GPU was set up ahead, between timed candidates
    start_failures: int = 0  # start-ups and GPU set-ups that failed
    last_error: str | None = None


@dataclass
class _Shelf:
    """The pre-started workers of one backend and device."""

    target: int = 0
    ready: deque[WorkerHandle] = field(default_factory=deque)
    starting: int = 0
    setting_up: list[WorkerHandle] = field(default_factory=list)  # off `ready` while they set up their GPU
    failures: int = 0  # consecutive start failures, for back-off
    retry_at: float = 0.0


class WarmPool:
    """Keeps `size` started workers ready per backend and device; `acquire` hands one out."""

    def __init__(self, sandbox: ProcessSandbox | None = None, size: int = 1, limits: Limits = WARM_LIMITS,
                 max_starting: int | None = None) -> None:
        self.sandbox = sandbox if sandbox is not None else ProcessSandbox()
        self.size = size
        self.limits = limits
        self.max_starting = max_starting  # concurrent start-ups per device (None: as many as it keeps)
        self.stats = WarmStats()
        self._shelves: dict[BackendSpec, _Shelf] = {}
        self._quiet: Counter[str] = Counter()  # devices being timed on: no GPU set-up there meanwhile
        self._lock = threading.Condition()
        self._closed = False

    # -- the Judge's hook ---------------------------------------------------------------

    def acquire(self, spec: BackendSpec, limits: Limits) -> WorkerHandle:
        """A pre-started worker held to `limits`, or a cold start when none is ready or fits."""
        while self._fits(limits):
            with self._lock:
                shelf = self._shelf(spec)
                # a worker already starting (or setting up) is never later than a cold start begun now
                while not shelf.ready and (shelf.starting or shelf.setting_up) and not self._closed:
                    self._lock.wait(0.5)
                handle = _take(shelf.ready)
                self._fill(spec, shelf)
            if handle is None:
                break
            alive = handle.alive()
            if alive and self._hold_to(handle, limits):
                with self._lock:
                    self.stats.hits += 1
                return handle
            with self._lock:
                self.stats.discarded += 1
            handle.close()
            if alive:
                break  # its CPU limit could not be set: the next one's would not be either
        with self._lock:
            self.stats.misses += 1
        return self.sandbox.start(spec, limits)

    @contextmanager
    def quiet(self, spec: BackendSpec) -> Iterator[None]:
        """No worker sets up its GPU on this device inside: for timing on it, or calibrating.

        Entering waits for GPU set-ups already under way there (a CUDA context and a clock
        calibration: well under a second). Start-ups go on: they work on the CPU alone (imports,
        a first compilation), and a GPU host has cores to spare beside the one timing. Workers
        that became ready meanwhile are set up afterwards.
        """
        device = spec.torch_device
        deadline = time.monotonic() + SETUP_TIMEOUT_S
        with self._lock:
            self._quiet[device] += 1
            while self._setting_up_on(device) and time.monotonic() < deadline:
                self._lock.wait(0.05)
        try:
            yield
        finally:
            with self._lock:
                self._quiet[device] -= 1
                for other, shelf in self._shelves.items():
                    if other.torch_device == device:
                        self._fill(other, shelf)

    def _starting_on(self, device: str) -> int:
        return sum(shelf.starting for spec, shelf in self._shelves.items() if spec.torch_device == device)

    def _setting_up_on(self, device: str) -> int:
        return sum(len(shelf.setting_up) for spec, shelf in self._shelves.items() if spec.torch_device == device)

    # -- keeping shelves full -------------------------------------------------------------

    def prepare(self, spec: BackendSpec, count: int | None = None) -> None:
        """Keep `count` (default: the pool's size) workers ready for this backend and device."""
        with self._lock:
            shelf = self._shelf(spec)
            shelf.target = self.size if count is None else count
            self._fill(spec, shelf)

    def ready(self, spec: BackendSpec) -> int:
        with self._lock:
            shelf = self._shelves.get(spec)
            return sum(h.alive() for h in shelf.ready) if shelf else 0

    def wait_ready(self, spec: BackendSpec, count: int, timeout_s: float) -> bool:
        """Block until `count` workers are ready, their GPU set up (for benchmarks and tests); False on timeout."""
        deadline = time.monotonic() + timeout_s
        with self._lock:
            while sum(h.set_up for h in self._shelf(spec).ready) < count:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self._closed:
                    return False
                self._lock.wait(min(remaining, 0.5))
        return True

    def close(self) -> None:
        with self._lock:
            self._closed = True
            handles = [h for shelf in self._shelves.values() for h in shelf.ready]
            # those setting up are closed by their set-up thread once their channel fails
            setting_up = [h for shelf in self._shelves.values() for h in shelf.setting_up]
            for shelf in self._shelves.values():
                shelf.ready.clear()
            self._lock.notify_all()
        for handle in handles:
            handle.close()
        for handle in setting_up:
            handle.channel.close()

    def _shelf(self, spec: BackendSpec) -> _Shelf:
        if spec not in self._shelves:
            self._shelves[spec] = _Shelf(target=self.size)
        return self._shelves[spec]

    def _fill(self, spec: BackendSpec, shelf: _Shelf) -> None:
        """Start workers until the shelf will hold its target, and set up the GPU of those
        waiting without (called with the lock held)."""
        if self._closed:
            return
        # workers that died while waiting are dropped here, so they are replaced, not counted
        dead = [h for h in shelf.ready if not h.alive()]
        for handle in dead:
            shelf.ready.remove(handle)
            self.stats.discarded += 1
            threading.Thread(target=handle.close, daemon=True).start()
        waiting = [] if self._quiet[spec.torch_device] else [h for h in shelf.ready if not h.set_up]
        for handle in waiting:  # (on the CPU, a round trip that does nothing)
            shelf.ready.remove(handle)
            shelf.setting_up.append(handle)
            threading.Thread(target=self._set_up, args=(spec, handle), daemon=True,
                             name=f"setup-{spec.torch_device}").start()
        now = time.monotonic()
        most = shelf.target if self.max_starting is None else self.max_starting
        kept = len(shelf.ready) + len(shelf.setting_up) + shelf.starting
        while kept < shelf.target and shelf.starting < most and now >= shelf.retry_at:
            kept += 1
            shelf.starting += 1
            threading.Thread(target=self._start_one, args=(spec,), daemon=True,
                             name=f"warm-{spec.torch_device}").start()

    def _start_one(self, spec: BackendSpec) -> None:
        handle: WorkerHandle | None = None
        error: str | None = None
        try:
            handle = self.sandbox.start(spec, self.limits)
            # connected is not started: the worker imports torch and compiles a first Triton kernel
            # before it says `ready`; its GPU is set up afterwards (_set_up), while the device is not timed
            if not handle.channel.readable(READY_TIMEOUT_S) or not handle.alive():
                summary = handle.exit_summary() if not handle.alive() else f"no `ready` within {READY_TIMEOUT_S:g} s"
                handle.close()
                handle = None
                raise WorkerStartError(f"a pre-started worker failed to start: {summary}")
        except Exception as failure:  # whatever it is, the shelf must not count this start forever
            error = f"{type(failure).__name__}: {failure}" if not isinstance(failure, (WorkerStartError, OSError)) else str(failure)
        with self._lock:
            shelf = self._shelf(spec)
            shelf.starting -= 1
            if handle is not None and not self._closed:
                shelf.ready.append(handle)
                shelf.failures = 0
                self.stats.started += 1
                handle = None
            elif error is not None:
                self._failed(spec, shelf, error)
            self._fill(spec, shelf)
            self._lock.notify_all()
        if handle is not None:  # the pool closed while it started
            handle.close()

    def _set_up(self, spec: BackendSpec, handle: WorkerHandle) -> None:
        """Have a started worker set up its GPU now (the device is not being timed): it answers
        with a second `ready`, read here, so the judge reads none."""
        error: str | None = None
        try:
            first = handle.channel.recv(timeout=5.0)  # its start-up `ready`: the pool saw it arrive
            if first.type != "ready":
                raise WorkerStartError(f"a pre-started worker said {first.type!r} before its set-up")
            handle.channel.send({"type": "setup", "nonce": "setup"})
            answer = handle.channel.recv(timeout=SETUP_TIMEOUT_S)
            if answer.type != "ready" or not answer.header.get("set_up"):
                detail = answer.header.get("message", answer.type)
                raise WorkerStartError(f"a pre-started worker could not set up its GPU: {detail}")
            handle.set_up = True
        except Exception as failure:  # a dead worker, a timeout, a failed CUDA set-up
            error = str(failure) or type(failure).__name__
            handle.close()  # gone before the failure is counted: no one sees a failed worker still open
        with self._lock:
            shelf = self._shelf(spec)
            shelf.setting_up.remove(handle)
            if error is None and not self._closed:
                shelf.ready.appendleft(handle)  # handed out before those not yet set up
                shelf.failures = 0
                self.stats.set_up += 1
                handle = None
            elif error is not None:
                self._failed(spec, shelf, error)
                handle = None
            self._fill(spec, shelf)
            self._lock.notify_all()
        if handle is not None:  # set up, but the pool closed meanwhile
            handle.close()

    def _failed(self, spec: BackendSpec, shelf: _Shelf, error: str) -> None:
        """A start-up or set-up failed: a host that cannot start workers must not be hammered, so
        back off, then try again (called with the lock held)."""
        shelf.failures += 1
        shelf.retry_at = time.monotonic() + min(MAX_BACKOFF_S, 0.5 * 2 ** shelf.failures)
        self.stats.start_failures += 1
        self.stats.last_error = error
        timer = threading.Timer(shelf.retry_at - time.monotonic() + 0.01, self._refill, args=(spec,))
        timer.daemon = True
        timer.start()

    def _refill(self, spec: BackendSpec) -> None:
        with self._lock:
            self._fill(spec, self._shelf(spec))

    def _fits(self, limits: Limits) -> bool:
        """Memory, thread and file limits are set at start-up: only a cold start honours others."""
        return (limits.memory_bytes, limits.processes, limits.file_bytes) == (
            self.limits.memory_bytes, self.limits.processes, self.limits.file_bytes) and limits.cpu_s <= self.limits.cpu_s

    def _hold_to(self, handle: WorkerHandle, limits: Limits) -> bool:
        """Lower a pre-started worker's CPU limit to what the request allows from now on.

        A judge may not change the limits of a worker running as another user without
        CAP_SYS_RESOURCE (a container's root usually lacks it): the worker is handed out all the
        same, lowers its own limit when it loads the candidate, and the judge reads it back.
        """
        try:
            spent = cpu_seconds(handle.pid)
            allowed = int(spent) + 1 + limits.cpu_s  # start-up is not charged to the candidate
            resource.prlimit(handle.pid, resource.RLIMIT_CPU, (allowed, allowed + 5))
        except PermissionError:
            return True
        except (OSError, ValueError):
            return False
        return True


def _take(ready: deque[WorkerHandle]) -> WorkerHandle | None:
    """The first worker whose GPU is set up, else the first one."""
    for handle in ready:
        if handle.set_up:
            ready.remove(handle)
            return handle
    return ready.popleft() if ready else None


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time a process has used so far, from /proc."""
    with open(f"/proc/{pid}/stat", "rb") as f:
        fields = f.read().decode().rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12])  # utime, stime
    return ticks / os.sysconf("SC_CLK_TCK")


def cpu_hard_limit(pid: int) -> int | None:
    """A process's hard RLIMIT_CPU in seconds, from /proc (None: unlimited)."""
    with open(f"/proc/{pid}/limits") as f:
        line = next(line for line in f if line.startswith("Max cpu time"))
    value = line.split()[4]
    return None if value == "unlimited" else int(value)
