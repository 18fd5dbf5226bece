"""The `docker` sandbox: one locked-down container per candidate, through the docker SDK.

No network, a read-only root, a tmpfs /tmp, the private directory bind-mounted read-write at the
same path (the worker connects back over the Unix socket in it), memory and pids limits, every
capability dropped, no-new-privileges, user nobody, the GPU by device request (NVIDIA) or device
files (MetaX), a wall-clock kill, and the container removed afterwards.

Two kinds of image: a full one holding Python, torch and Triton (`host_python=False`), or the
local test image, built FROM scratch with nothing but a passwd file, into which this host's
Python environment is bind-mounted read-only (`host_python=True`, the default). Build the latter
with `python -m evaluators.sandbox_docker build-image` (CI does, through `make sandbox-image`).
"""

from __future__ import annotations

import io
import os
import shutil
import socket
import sys
import tarfile
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from evaluators import workdirs
from evaluators.backends import BackendSpec
from evaluators.channel import Channel
from evaluators.sandbox import (
    LOG_TAIL_BYTES,
    UNPRIVILEGED_UID,
    Limits,
    WorkerHandle,
    WorkerStartError,
    accept_worker,
    watch,
)
from evaluators.worker_env import package_root, worker_environment

DEFAULT_IMAGE = "kernelsmith-sandbox:local"
TMPFS_BYTES = 256 << 20
WALL_GRACE_S = 30.0  # the judge kills on its own deadline; this catches a judge that never does
# what the FROM-scratch image holds: a user for `nobody` and nothing else
IMAGE_FILES = {
    "Dockerfile": "FROM scratch\nCOPY etc /etc\n",
    "etc/passwd": f"nobody:x:{UNPRIVILEGED_UID}:{UNPRIVILEGED_UID}:nobody:/nonexistent:/usr/sbin/nologin\n",
    "etc/group": f"nogroup:x:{UNPRIVILEGED_UID}:\n",
}
# system directories a host Python and Triton's compiler (cc, ptxas, libcuda) need, read-only
HOST_SYSTEM_PATHS = ("/usr", "/lib", "/lib64", "/bin", "/sbin", "/etc/alternatives", "/etc/ld.so.cache")


class DockerUnavailable(WorkerStartError):
    """No docker daemon answers here, or the image is missing."""


def docker_client() -> Any:
    """A client for the local daemon; DockerUnavailable when none answers."""
    try:
        import docker

        client = docker.from_env(timeout=60)
        client.ping()
        return client
    except Exception as error:  # the SDK raises many kinds for "no daemon"
        raise DockerUnavailable(f"no docker daemon is reachable: {error}") from None


def build_image(client: Any, tag: str = DEFAULT_IMAGE) -> str:
    """Build the FROM-scratch test image from an in-memory context: nothing is pulled."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, text in IMAGE_FILES.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o644
            tar.addfile(info, io.BytesIO(data))
    buffer.seek(0)
    client.images.build(fileobj=buffer, custom_context=True, tag=tag, rm=True, pull=False)
    return tag


def host_python_paths() -> list[str]:
    """What a worker started from this host's Python needs to see: the interpreter, its packages, the code."""
    import site

    paths = {sys.prefix, sys.base_prefix, sys.exec_prefix, package_root(), os.path.dirname(sys.executable)}
    paths.update(site.getsitepackages())
    paths.update(p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p)
    paths.update(p for p in HOST_SYSTEM_PATHS if os.path.exists(p))
    both = {os.path.abspath(p) for p in paths} | {os.path.realpath(p) for p in paths}
    # never the root, nor /tmp (the container's own tmpfs) or /proc, /dev, /sys
    refused = {"/", "/tmp", "/proc", "/dev", "/sys", tempfile.gettempdir()}
    ordered = sorted(p for p in both if os.path.exists(p) and p not in refused)
    # a path under another one is already visible
    return [p for p in ordered if not any(p != q and p.startswith(q.rstrip("/") + "/") for q in ordered)]


class DockerSandbox:
    """Starts each worker in its own container."""

    name = "docker"

    def __init__(self, image: str = DEFAULT_IMAGE, host_python: bool = True, client: Any = None,
                 workdir_root: str | None = None, python: str | None = None, wall_grace_s: float = WALL_GRACE_S) -> None:
        self.image = image
        self.wall_grace_s = wall_grace_s
        self.host_python = host_python
        self._client = client
        self.workdir_root = workdir_root  # must be the same path for this process and the daemon
        self.python = python or (sys.executable if host_python else "python3")

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = docker_client()
        return self._client

    def start(self, spec: BackendSpec, limits: Limits, connect_timeout_s: float = 180.0) -> DockerWorkerHandle:
        from docker.errors import DockerException, ImageNotFound

        workdir = workdirs.make("kernelsmith-worker-", self.workdir_root)
        for sub in ("tmp", "home", "triton-cache"):
            (workdir / sub).mkdir()
        for path in [workdir, *workdir.iterdir()]:
            os.chown(path, UNPRIVILEGED_UID, UNPRIVILEGED_UID) if os.geteuid() == 0 else os.chmod(path, 0o777)
        socket_path = workdir / "channel.sock"
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(str(socket_path))
        os.chmod(socket_path, 0o666)
        listener.listen(1)
        container = None
        try:
            # create, then start: `run` would try to pull a missing image, and nothing is ever pulled
            container = self.client.containers.create(
                self.image, [self.python, "-m", "evaluators.worker", str(socket_path)],
                **self._options(spec, limits, workdir),
            )
            container.start()
        except DockerException as error:
            listener.close()
            if container is not None:
                container.remove(force=True)
            shutil.rmtree(workdir, ignore_errors=True)
            if isinstance(error, ImageNotFound):
                raise DockerUnavailable(f"the sandbox image {self.image} is missing: build it with "
                                        "`python -m evaluators.sandbox_docker build-image`") from None
            raise WorkerStartError(f"docker could not start the worker: {error}") from None
        handle = DockerWorkerHandle(channel=Channel(socket.socket()), workdir=workdir, network_isolated=True,
                                    privileges_dropped=True, sandbox="docker", container=container)
        try:
            connection = accept_worker(listener, handle.exit_code, connect_timeout_s)
        except Exception:
            handle.kill()
            handle._release()
            shutil.rmtree(workdir, ignore_errors=True)
            raise
        finally:
            listener.close()
            socket_path.unlink(missing_ok=True)
        handle.channel = Channel(connection)
        handle.deadline = time.monotonic() + limits.wall_s + self.wall_grace_s
        handle._watchdog = threading.Thread(target=_watch_container, args=(handle, limits), daemon=True)
        handle._watchdog.start()
        return handle

    def _options(self, spec: BackendSpec, limits: Limits, workdir: Path) -> dict[str, Any]:
        from docker.types import DeviceRequest, Mount, Ulimit

        env = worker_environment(spec, workdir)
        mounts = [Mount(target=str(workdir), source=str(workdir), type="bind", read_only=False)]
        if self.host_python:
            mounts += [Mount(target=p, source=p, type="bind", read_only=True) for p in host_python_paths()]
        options: dict[str, Any] = dict(
            network_mode="none",
            read_only=True,
            tmpfs={"/tmp": f"rw,nosuid,nodev,size={TMPFS_BYTES}"},
            mounts=mounts,
            environment=env,
            working_dir=str(workdir),
            user=f"{UNPRIVILEGED_UID}:{UNPRIVILEGED_UID}",
            cap_drop=["ALL"],
            security_opt=["no-new-privileges"],
            mem_limit=limits.memory_bytes,
            memswap_limit=limits.memory_bytes,
            pids_limit=limits.processes,
            ulimits=[Ulimit(name="cpu", soft=limits.cpu_s, hard=limits.cpu_s + 5),
                     Ulimit(name="fsize", soft=limits.file_bytes, hard=limits.file_bytes),
                     Ulimit(name="core", soft=0, hard=0)],
            labels={"kernelsmith.worker": "1"},
        )
        # the GPU: NVIDIA's by device request, MetaX's by device files and the `video` group
        env.update(spec.container_env())
        if spec.docker_device_requests():
            options["device_requests"] = [DeviceRequest(**request) for request in spec.docker_device_requests()]
        if spec.docker_devices():
            options["devices"] = spec.docker_devices()
        if spec.docker_group_add():
            options["group_add"] = spec.docker_group_add()
        return options


@dataclass(kw_only=True)
class DockerWorkerHandle(WorkerHandle):
    """A worker in a container; the container's first process is the worker itself."""

    container: Any
    deadline: float = float("inf")
    _pid: int = 0

    @property
    def pid(self) -> int:
        if not self._pid:
            try:
                self.container.reload()
                self._pid = int(self.container.attrs["State"]["Pid"])
            except Exception:
                return 0
        return self._pid

    def alive(self) -> bool:
        pid = self.pid
        if pid:
            try:
                with open(f"/proc/{pid}/stat") as f:
                    return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
            except (OSError, IndexError):
                return False
        return self._state().get("Running", False)

    def _state(self) -> dict[str, Any]:
        try:
            self.container.reload()
            return dict(self.container.attrs.get("State", {}))
        except Exception:
            return {}

    def wait(self, timeout: float) -> int | None:
        try:
            self.container.wait(timeout=max(timeout, 0.1))
        except Exception:  # requests' timeout, or the container is already gone
            pass
        return self.exit_code()

    def exit_code(self) -> int | None:
        state = self._state()
        if not state or state.get("Running") or state.get("Status") == "created":
            return None
        code = int(state.get("ExitCode", 0))
        if state.get("OOMKilled") and not self.killed_for:
            self.killed_for = "it ran out of its container's memory limit"
        return -(code - 128) if code > 128 else code  # 128 + n: the signal n, as a subprocess reports it

    def kill(self, reason: str | None = None) -> None:
        if reason and not self.killed_for:
            self.killed_for = reason
        try:
            self.container.kill()
        except Exception:  # already stopped, or gone
            pass
        self.wait(10)

    def log_tail(self) -> str:
        parts = []
        for name, flags in (("stdout.log", {"stdout": True, "stderr": False}),
                            ("stderr.log", {"stdout": False, "stderr": True})):
            try:
                text = self.container.logs(**flags)[-LOG_TAIL_BYTES:].decode("utf-8", "replace")
            except Exception:
                continue
            if text.strip():
                parts.append(f"--- {name} ---\n{text.rstrip()}")
        return "\n".join(parts)

    def _release(self) -> None:
        try:
            self.container.remove(force=True)
        except Exception:  # removed already
            pass


def _watch_container(handle: DockerWorkerHandle, limits: Limits) -> None:
    """The process sandbox's watchdog (memory, processes, threads), plus the wall-clock kill."""
    killer = threading.Thread(target=watch, args=(handle, limits), daemon=True)
    killer.start()
    while not handle._stop.wait(0.5):
        if time.monotonic() > handle.deadline:
            handle.kill(f"it ran past the {limits.wall_s:g} s wall-clock limit")
            return
        if not killer.is_alive() and not handle.alive():
            return


def main(argv: list[str]) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m evaluators.sandbox_docker")
    parser.add_argument("command", choices=["build-image"])
    parser.add_argument("--tag", default=DEFAULT_IMAGE)
    args = parser.parse_args(argv)
    try:
        print(build_image(docker_client(), args.tag))
    except DockerUnavailable as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
