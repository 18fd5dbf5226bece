"""The `process` sandbox: one fresh, locked-down worker process per candidate.

Each worker gets a private directory (its HOME, TMPDIR and Triton cache, wiped afterwards), an
environment with nothing but what the backend needs, its own session and process group, CPU,
file and process limits, no network where a namespace can be made, an unprivileged user of its
own when the evaluator runs as root, and a watchdog that kills the whole group on memory or process
excess. The worker connects back over a Unix socket in its directory.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from evaluators import workdirs, worker_users
from evaluators.backends import BackendSpec
from evaluators.channel import Channel
from evaluators.proctree import descendants, kill_tree
from evaluators.worker_env import worker_environment

UNPRIVILEGED_UID = worker_users.NOBODY  # where no user of its own can be given (and in containers)
LOG_TAIL_BYTES = 8000


@dataclass
class Limits:
    wall_s: float = 300.0
    cpu_s: int = 600
    memory_bytes: int = 16 << 30  # resident memory of the worker's processes, host side
    processes: int = 1024  # threads count too (torch starts several per core)
    file_bytes: int = 2 << 30


@dataclass(kw_only=True)
class WorkerHandle:
    """A running worker, whatever the sandbox: its channel, its directory and how to end it.

    The judge, the warm pool and the scheduler use only what is defined here.
    """

    channel: Channel
    workdir: Path
    network_isolated: bool
    privileges_dropped: bool
    sandbox: str = "process"
    killed_for: str | None = None
    # its GPU was set up ahead by the warm pool, which read its `ready` (the judge then reads none)
    set_up: bool = False
    _watchdog: threading.Thread | None = field(default=None, repr=False)
    _stop: threading.Event = field(default_factory=threading.Event, repr=False)

    @property
    def pid(self) -> int:
        """The worker's process id on this host (for its limits)."""
        raise NotImplementedError

    @property
    def tree_root(self) -> int:
        """The process under which everything the worker started lives (for the watchdog)."""
        return self.pid

    def alive(self) -> bool:
        raise NotImplementedError

    def wait(self, timeout: float) -> int | None:
        """The exit code (negative: the signal) once it ends within `timeout`, else None."""
        raise NotImplementedError

    def kill(self, reason: str | None = None) -> None:
        raise NotImplementedError

    def exit_code(self) -> int | None:
        raise NotImplementedError

    def exit_summary(self) -> str:
        code = self.exit_code()
        if self.killed_for:
            return f"the worker was killed: {self.killed_for}"
        if code is None:
            return "the worker is still running"
        if code < 0:
            name = signal.Signals(-code).name if -code in signal.Signals._value2member_map_ else str(-code)
            hint = {"SIGSEGV": " (segmentation fault)", "SIGKILL": " (killed)", "SIGXCPU": " (CPU time limit)",
                    "SIGABRT": " (aborted)", "SIGBUS": " (bus error)", "SIGXFSZ": " (file size limit)"}.get(name, "")
            return f"the worker died from {name}{hint}"
        return f"the worker exited with code {code}"

    def log_tail(self) -> str:
        parts = []
        for name in ("stdout.log", "stderr.log"):
            text = _tail(self.workdir / name)
            if text.strip():
                parts.append(f"--- {name} ---\n{text.rstrip()}")
        return "\n".join(parts)

    def close(self) -> None:
        """End the worker and wipe its directory: nothing survives into the next evaluation."""
        self._stop.set()
        try:
            self.channel.send({"type": "bye"})
        except OSError:
            pass
        self.channel.close()
        self.wait(2)
        self.kill()  # descendants too: a worker that exited may have left children behind
        self._release()
        shutil.rmtree(self.workdir, ignore_errors=True)

    def _release(self) -> None:
        """Whatever the sandbox holds beside the process (a container)."""


@dataclass(kw_only=True)
class ProcessWorkerHandle(WorkerHandle):
    """A worker that is a subprocess of this host."""

    process: subprocess.Popen[bytes]  # the jail, which stays as the worker's parent (evaluators/jail.py)
    worker_pid: int  # as the kernel told it when the worker connected, before any candidate code ran
    user: worker_users.WorkerUser | None = None  # the user it was dropped to (None: the evaluator's own)

    @property
    def pid(self) -> int:
        return self.worker_pid

    @property
    def tree_root(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def wait(self, timeout: float) -> int | None:
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def exit_code(self) -> int | None:
        return self.process.poll()

    def kill(self, reason: str | None = None) -> None:
        if reason and not self.killed_for:
            self.killed_for = reason
        kill_tree(self.process.pid)
        self.wait(10)

    def _release(self) -> None:
        if self.user is not None:
            self.user.release()


class ProcessSandbox:
    """Starts workers as locked-down subprocesses of this host."""

    name = "process"
    _privilege_probe: dict[tuple[str, bool], bool] = {}

    def __init__(self, isolate_network: bool = True, drop_privileges: bool | None = None) -> None:
        self.isolate_network = isolate_network
        self.drop_privileges = drop_privileges

    def start(self, spec: BackendSpec, limits: Limits, connect_timeout_s: float = 180.0) -> WorkerHandle:
        workdir = workdirs.make("kernelsmith-worker-")
        try:
            return self._start_in(workdir, spec, limits, connect_timeout_s)
        except BaseException:
            # a worker that never started leaves nothing behind: no handle will ever close() it
            shutil.rmtree(workdir, ignore_errors=True)
            raise

    def _start_in(self, workdir: Path, spec: BackendSpec, limits: Limits, connect_timeout_s: float) -> WorkerHandle:
        for sub in ("tmp", "home", "triton-cache"):
            (workdir / sub).mkdir()
        drop = self._can_drop_privileges(spec) if self.drop_privileges is None else self.drop_privileges
        user = _claim_user() if drop else None
        try:
            return self._launch(workdir, spec, limits, connect_timeout_s, user)
        except BaseException:
            if user is not None:
                user.release()  # _launch killed what it started
            raise

    def _launch(self, workdir: Path, spec: BackendSpec, limits: Limits, connect_timeout_s: float,
                user: worker_users.WorkerUser | None) -> WorkerHandle:
        if user is not None:
            for path in [workdir, *workdir.iterdir()]:
                os.chown(path, user.uid, user.uid)
        socket_path = workdir / "channel.sock"
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(str(socket_path))
        os.chmod(socket_path, 0o666)
        listener.listen(1)
        command = self._command(spec, limits, user, socket_path)
        stdout = open(workdir / "stdout.log", "wb")
        stderr = open(workdir / "stderr.log", "wb")
        try:
            # started from "/": `python -m` puts its working directory first on the import path, and
            # the work directory belongs to the worker's user while the jail still runs as root
            process = subprocess.Popen(
                command,
                cwd="/",
                env=worker_environment(spec, workdir),
                stdin=subprocess.DEVNULL,
                stdout=stdout,
                stderr=stderr,
                start_new_session=True,
                close_fds=True,
            )
        finally:
            stdout.close()
            stderr.close()
        try:
            connection = accept_worker(listener, process.poll, connect_timeout_s)
        except WorkerStartError as error:
            _end(process)
            # the directory and its logs are about to go: keep why the worker failed in the message
            raise WorkerStartError(f"{error}{_last_output(workdir / 'stderr.log')}") from None
        except BaseException:
            _end(process)
            raise
        finally:
            listener.close()
            socket_path.unlink(missing_ok=True)
        handle = ProcessWorkerHandle(
            process=process,
            worker_pid=peer_pid(connection),
            channel=Channel(connection),
            workdir=workdir,
            network_isolated=self.isolate_network and _separate_network(process.pid),
            privileges_dropped=user is not None,
            user=user,
        )
        handle._watchdog = threading.Thread(target=watch, args=(handle, limits), daemon=True)
        handle._watchdog.start()
        return handle

    def _command(self, spec: BackendSpec, limits: Limits, user: worker_users.WorkerUser | None,
                 socket_path: Path) -> list[str]:
        jail = [sys.executable, "-m", "evaluators.jail", "--cpu", str(limits.cpu_s), "--fsize", str(limits.file_bytes),
                "--workdir", str(socket_path.parent)]
        if self.isolate_network:
            jail.append("--net")
        if user is not None:
            jail += ["--uid", str(user.uid), "--gid", str(user.uid), "--nproc", str(limits.processes)]
        if spec.device_index is None:
            jail += ["--as-bytes", str(limits.memory_bytes + (8 << 30))]  # torch reserves address space
        return [*jail, "--", sys.executable, "-m", "evaluators.worker", str(socket_path)]

    def _can_drop_privileges(self, spec: BackendSpec) -> bool:
        """Root drops each worker to a user of its own (worker_users.py) when such a user can run
        this Python, its packages and the device."""
        if os.geteuid() != 0:
            return False
        needs_gpu = spec.device_index is not None
        key = (sys.executable, needs_gpu)
        if key not in self._privilege_probe:
            user = _claim_user()  # none free: the start fails, it never falls back to root
            probe = [sys.executable, "-m", "evaluators.jail", "--uid", str(user.uid), "--probe"]
            if needs_gpu:
                probe.append("--probe-cuda")
            env = worker_environment(spec, Path(tempfile.gettempdir()))
            try:
                result = subprocess.run(probe, env=env, cwd="/", capture_output=True, timeout=120)
                self._privilege_probe[key] = result.returncode == 0
            except (subprocess.TimeoutExpired, OSError):
                self._privilege_probe[key] = False
            finally:
                user.release()
        return self._privilege_probe[key]


def accept_worker(listener: socket.socket, exit_code: Callable[[], int | None], timeout_s: float) -> socket.socket:
    """The worker's connection, once it has started; `exit_code` tells whether it died first."""
    deadline = time.monotonic() + timeout_s
    listener.settimeout(0.2)
    while True:
        try:
            connection, _ = listener.accept()
            connection.settimeout(None)
            return connection
        except TimeoutError:
            code = exit_code()
            if code is not None:
                raise WorkerStartError(f"the worker exited with code {code} before connecting") from None
            if time.monotonic() > deadline:
                raise WorkerStartError(f"the worker did not connect within {timeout_s:.0f} s") from None


def _claim_user() -> worker_users.WorkerUser:
    try:
        return worker_users.claim()
    except worker_users.NoWorkerUser as error:
        raise WorkerStartError(str(error)) from None


def peer_pid(connection: socket.socket) -> int:
    """The process at the other end of a Unix socket, from the kernel (SO_PEERCRED): not its word."""
    credentials = connection.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    return struct.unpack("3i", credentials)[0]


class WorkerStartError(Exception):
    """The evaluator could not start a worker: an infra_error, never the candidate's fault."""


def _end(process: subprocess.Popen[bytes]) -> None:
    """Kill a worker that never connected, and reap it before its directory is removed."""
    kill_tree(process.pid)
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        pass


def _tail(log: Path) -> str:
    """The last LOG_TAIL_BYTES of a worker's log ('' when there is none)."""
    try:
        with open(log, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - LOG_TAIL_BYTES))
            return f.read().decode("utf-8", "replace")
    except OSError:
        return ""


def _last_output(log: Path) -> str:
    tail = _tail(log).strip().splitlines()[-3:]
    return ("; last output: " + " | ".join(tail)) if tail else ""


def _separate_network(pid: int) -> bool:
    """Judged from outside: does the worker live in a network namespace other than ours?"""
    for _ in range(50):
        try:
            theirs = os.readlink(f"/proc/{pid}/ns/net")
            ours = os.readlink("/proc/self/ns/net")
        except OSError:
            return False
        if theirs != ours:
            return True
        time.sleep(0.02)  # the jail may not have unshared yet
    return False


def _resident_bytes(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, IndexError, ValueError):
        return 0


def _thread_count(pid: int) -> int:
    try:
        return len(os.listdir(f"/proc/{pid}/task"))
    except OSError:
        return 0


def watch(handle: WorkerHandle, limits: Limits) -> None:
    """The watchdog: kills the worker's whole tree on too many processes, threads or too much memory."""
    while not handle._stop.wait(0.1):
        if not handle.alive():
            return
        pids = descendants(handle.tree_root)
        if len(pids) > 32:
            handle.kill(f"it started {len(pids)} processes")
            return
        threads = sum(_thread_count(pid) for pid in pids)
        if threads > limits.processes:
            handle.kill(f"it ran {threads} threads, over the limit of {limits.processes}")
            return
        resident = sum(_resident_bytes(pid) for pid in pids)
        if resident > limits.memory_bytes:
            handle.kill(f"it used {resident >> 20} MiB of host memory, over the limit of {limits.memory_bytes >> 20} MiB")
            return
