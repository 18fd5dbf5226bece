"""What the evaluator service is started with, and the checks that refuse an unsafe or impossible start
(an open address without a token, a GPU list that makes no sense, a docker image that is not there)."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any

from evaluators.sandbox import ProcessSandbox
from evaluators.scheduler import SchedulerConfig

MIN_TOKEN_CHARS = 16
SANDBOXES = ("process", "docker")


class ServiceConfigError(Exception):
    """The service cannot start as configured (an open address without a token, a missing GPU)."""


@dataclass
class ServiceSettings:
    host: str = "127.0.0.1"
    port: int = 8470
    token: str | None = None
    devices: list[int] | None = None
    cpu_workers: int | None = None
    warm: int = 0
    max_queue: int | None = 256
    result_ttl_s: float = 3600.0
    max_request_bytes: int = 4 << 20
    max_source_bytes: int = 1 << 20  # per source file
    max_wait_s: float = 60.0  # longest a long poll holds the connection
    log_level: str = "warning"
    sandbox: str = "process"  # or "docker": each worker in its own container
    docker_image: str | None = None  # default: the local sandbox image (`make sandbox-image`)

    def check(self) -> None:
        if self.sandbox not in SANDBOXES:
            raise ServiceConfigError(f"sandbox {self.sandbox!r} is unknown; choose one of {', '.join(SANDBOXES)}")
        for name, low in (("port", 0), ("warm", 0), ("cpu_workers", 0), ("max_queue", 1), ("result_ttl_s", 0)):
            value = getattr(self, name)
            if value is not None and value < low:
                raise ServiceConfigError(f"{name.replace('_', '-')} is {value}; it must be at least {low}")
        if self.port > 65535:
            raise ServiceConfigError(f"port {self.port} does not exist; ports go up to 65535")

    def scheduler_config(self) -> SchedulerConfig:
        return SchedulerConfig(devices=self.devices, cpu_workers=self.cpu_workers, warm=self.warm,
                               max_queue=self.max_queue, result_ttl_s=self.result_ttl_s)

    def make_sandbox(self) -> Any:
        """The sandbox workers start in; a docker daemon or image that is not there is said now."""
        if self.sandbox == "process":
            return ProcessSandbox()
        from evaluators.sandbox_docker import DEFAULT_IMAGE, DockerSandbox, DockerUnavailable, docker_client

        image = self.docker_image or DEFAULT_IMAGE
        try:
            client = docker_client()
        except DockerUnavailable as error:
            raise ServiceConfigError(f"--sandbox docker: {error}; start the docker daemon, or use --sandbox process") from None
        try:
            client.images.get(image)
        except Exception:  # docker.errors.ImageNotFound, or the daemon refusing
            raise ServiceConfigError(
                f"--sandbox docker: image {image!r} is not on this host; build it (`make sandbox-image` builds "
                f"{DEFAULT_IMAGE}) or name another with --docker-image"
            ) from None
        return DockerSandbox(image=image, client=client)


def check_binding(host: str, token: str | None) -> None:
    """Refuse any address but loopback without a token: whoever reaches the port runs code here."""
    if token is not None and len(token) < MIN_TOKEN_CHARS:
        raise ServiceConfigError(f"the token has {len(token)} characters; use at least {MIN_TOKEN_CHARS} "
                                 "(e.g. `python -c 'import secrets; print(secrets.token_urlsafe(32))'`)")
    if token is None and not is_loopback(host):
        raise ServiceConfigError(
            f"refusing to listen on {host} without a token: anyone who reaches this port could run code here. "
            "Pass --token (or set KERNELSMITH_EVALUATOR_TOKEN), or listen on 127.0.0.1")


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def parse_devices(text: str | None) -> list[int] | None:
    """'0,1' -> [0, 1]; 'none' -> []; None or 'all' -> None (every GPU torch sees)."""
    if text is None or text.strip().lower() in ("", "all"):
        return None
    if text.strip().lower() == "none":
        return []
    try:
        devices = [int(part) for part in text.replace(" ", "").split(",") if part]
    except ValueError:
        raise ServiceConfigError(f"--devices {text!r}: expected GPU indices like 0,1 (or 'all', 'none')") from None
    if any(index < 0 for index in devices) or len(set(devices)) != len(devices):
        raise ServiceConfigError(f"--devices {text!r}: indices must be distinct and not negative")
    return devices
