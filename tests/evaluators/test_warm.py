"""The warm pool: pre-started sandboxed workers, each used for one candidate, dead ones replaced."""

from __future__ import annotations

import os
import signal
import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from evaluators.backends import resolve
from evaluators.channel import Channel
from evaluators.judge import Judge
from evaluators.protocol import Backend, Status
from evaluators.sandbox import Limits, ProcessSandbox, WorkerHandle
from evaluators.warm import WARM_LIMITS, WarmPool, cpu_hard_limit, cpu_seconds
from tests.evaluators.servers import RELU_CANDIDATE, RELU_REFERENCE, relu_request


@pytest.fixture(scope="module")
def spec():
    return resolve(Backend.triton_interpret)


@pytest.fixture(scope="module")
def pool(spec):
    pool = WarmPool(size=1)
    pool.prepare(spec)
    yield pool
    pool.close()


@pytest.fixture
def ready(pool, spec):
    assert pool.wait_ready(spec, 1, timeout_s=60), pool.stats.last_error
    pool.stats.hits = pool.stats.misses = pool.stats.discarded = 0
    return pool._shelves[spec].ready[0]


def _may_set_limits_of_other_users() -> bool:
    with open("/proc/self/status") as f:
        effective = int(next(line for line in f if line.startswith("CapEff:")).split()[1], 16)
    return bool(effective >> 24 & 1)  # CAP_SYS_RESOURCE


def cpu_limit(pid: int) -> int:
    with open(f"/proc/{pid}/limits") as f:
        line = next(line for line in f if line.startswith("Max cpu time"))
    return int(line.split()[3])


class Handed:
    """Hands the judge one worker started ahead with the warm limits untouched: the state a pool
    leaves it in where it may not lower another user's limits (no CAP_SYS_RESOURCE)."""

    def __init__(self, handle):
        self.handle = handle

    def acquire(self, spec, limits):
        return self.handle


def test_a_judge_gets_a_started_worker_held_to_the_request_limits(pool, spec, ready):
    assert ready.alive()
    handle = pool.acquire(spec, Limits(cpu_s=100))
    try:
        assert handle is ready
        # start-up is not charged to the candidate, and it gets no more CPU than its request allows;
        # a root without CAP_SYS_RESOURCE (a container's) may not set another user's limit: then the
        # worker lowers its own when it loads the candidate (test below), and the judge checks it
        if handle.privileges_dropped and not _may_set_limits_of_other_users():
            assert cpu_limit(handle.pid) > int(cpu_seconds(handle.pid)) + 1 + 100
        else:
            assert cpu_limit(handle.pid) == int(cpu_seconds(handle.pid)) + 1 + 100
        # started and set up long before it was needed: the pool read its `ready`, nothing waits unread
        assert handle.set_up and not handle.channel.readable(0.2)
    finally:
        handle.close()
    assert (pool.stats.hits, pool.stats.misses) == (1, 0)

    assert pool.wait_ready(spec, 1, timeout_s=60)
    judge = Judge(spec, workers=pool)
    given = pool._shelves[spec].ready[0]
    result = judge.evaluate(relu_request("warm"))
    assert result.status == Status.ok, result.message
    assert pool.stats.hits == 2
    given.process.wait(timeout=10)  # one candidate per worker: it is gone after its evaluation
    assert not given.alive() and not given.workdir.exists()


def test_a_worker_that_died_while_waiting_is_replaced(pool, spec, ready):
    os.kill(ready.pid, signal.SIGKILL)
    ready.process.wait(timeout=10)
    handle = pool.acquire(spec, Limits())
    try:
        assert handle.pid != ready.pid and handle.alive() and handle.set_up
        assert (pool.stats.discarded, pool.stats.hits, pool.stats.misses) == (1, 1, 0)  # its replacement
    finally:
        handle.close()


def test_other_limits_get_a_cold_start_and_close_ends_every_worker(pool, spec, ready):
    waiting = ready
    cold = pool.acquire(spec, Limits(memory_bytes=1 << 30))
    try:
        assert cold is not waiting and cold.alive()
        assert (pool.stats.hits, pool.stats.misses) == (0, 1)  # the warm one does not fit those limits
        assert pool._shelves[spec].ready[0] is waiting
    finally:
        cold.close()
    assert pool.wait_ready(spec, 1, timeout_s=60)
    ready = list(pool._shelves[spec].ready)
    pool.close()
    for handle in ready:
        handle.process.wait(timeout=10)
        assert not handle.workdir.exists()


def test_a_worker_lowers_its_own_cpu_limit_before_it_loads_the_candidate(spec, tmp_path):
    handle = ProcessSandbox().start(spec, WARM_LIMITS)
    try:
        assert handle.channel.recv(timeout=60).type == "ready"
        assert cpu_hard_limit(handle.pid) == WARM_LIMITS.cpu_s + 5
        (handle.workdir / "reference.py").write_text(RELU_REFERENCE)
        (handle.workdir / "candidate.py").write_text(RELU_CANDIDATE)
        handle.channel.send({"type": "load", "reference_file": str(handle.workdir / "reference.py"),
                             "candidate_file": str(handle.workdir / "candidate.py"), "init_seed": 0,
                             "cuda_ipc": False, "cpu_s": 100, "nonce": "n1"})
        assert handle.channel.recv(timeout=60).type == "device"
        assert handle.channel.recv(timeout=60).type == "loaded"
        # what a judge without the right to change it from outside reads back
        assert cpu_hard_limit(handle.pid) <= int(cpu_seconds(handle.pid)) + 1 + 100 + 5
    finally:
        handle.close()


def test_a_worker_whose_limits_the_pool_could_not_lower_still_passes_under_the_request_limit(spec):
    handle = ProcessSandbox().start(spec, WARM_LIMITS)
    seen: list[int | None] = []
    close = handle.close

    def close_and_note() -> None:  # read the limit the judge checked, before the worker goes
        if handle.alive():
            seen.append(cpu_hard_limit(handle.pid))
        close()

    handle.close = close_and_note
    request = relu_request("handed")
    result = Judge(spec, workers=Handed(handle)).evaluate(request)
    assert result.status == Status.ok, result.message
    assert seen and seen[0] is not None and seen[0] <= int(request.time_limit_s * 4) + 60 + 1 + 5 + 60


def test_a_worker_handed_out_while_its_device_is_timed_is_replaced_at_once(spec):
    pool = WarmPool(size=1)
    try:
        pool.prepare(spec)
        assert pool.wait_ready(spec, 1, timeout_s=60), pool.stats.last_error
        with pool.quiet(spec):
            handle = pool.acquire(spec, Limits())
            # its replacement starts (imports: the CPU only) but sets up no GPU before the timing ends
            assert pool._starting_on(spec.torch_device) == 1
            handle.close()
            deadline = time.monotonic() + 60
            while pool.ready(spec) == 0 and time.monotonic() < deadline:
                time.sleep(0.05)
            assert pool.ready(spec) == 1 and not pool._shelves[spec].ready[0].set_up
        assert pool.wait_ready(spec, 1, timeout_s=30), pool.stats.last_error  # set up afterwards
        assert pool.stats.hits == 1 and pool.stats.set_up == 2
    finally:
        pool.close()


def test_a_worker_is_handed_out_only_once_it_has_started_and_set_up(spec):
    # torch imported, device and clock set up: nothing of its start-up may overlap a timed candidate
    pool = WarmPool(size=1)
    try:
        pool.prepare(spec)
        handle = pool.acquire(spec, Limits())  # asked for at once: it waits for the one starting
        try:
            assert handle.set_up and pool.stats.hits == 1
            assert not handle.channel.readable(0.2)  # both its `ready`s were read by the pool
        finally:
            handle.close()
    finally:
        pool.close()


@dataclass(kw_only=True)
class SlowWorker(WorkerHandle):
    """A worker played by the test over a real socket pair: it answers `setup` when told to."""

    peer: Channel

    @property
    def pid(self) -> int:
        return os.getpid()

    def alive(self) -> bool:
        return True

    def close(self) -> None:
        self.channel.close()


class SlowSandbox:
    name = "process"

    def __init__(self) -> None:
        self.workers: list[SlowWorker] = []

    def start(self, spec, limits):
        ours, theirs = socket.socketpair()
        worker = SlowWorker(channel=Channel(ours), peer=Channel(theirs), workdir=Path("/nonexistent"),
                            network_isolated=True, privileges_dropped=False)
        worker.peer.send({"type": "ready"})
        self.workers.append(worker)
        return worker


def asked_to_set_up(pool: WarmPool, sandbox: SlowSandbox, spec) -> SlowWorker:
    """The pool's first worker, once the pool has asked it to set up its GPU."""
    pool.prepare(spec)
    deadline = time.monotonic() + 10
    while not sandbox.workers and time.monotonic() < deadline:
        time.sleep(0.01)
    worker = sandbox.workers[0]
    assert worker.peer.recv(timeout=10).type == "setup"
    return worker


def test_timing_waits_for_a_gpu_set_up_under_way_on_its_device(spec):
    sandbox = SlowSandbox()
    pool = WarmPool(sandbox=sandbox, size=1)
    try:
        worker = asked_to_set_up(pool, sandbox, spec)
        entered = threading.Event()

        def time_on_device() -> None:
            with pool.quiet(spec):
                entered.set()

        timing = threading.Thread(target=time_on_device)
        timing.start()
        assert not entered.wait(0.5)  # a candidate's timing does not begin beside a CUDA context being made
        worker.peer.send({"type": "ready", "set_up": True})
        assert entered.wait(5)
        timing.join()
        assert pool.wait_ready(spec, 1, timeout_s=5) and pool.stats.set_up == 1
    finally:
        pool.close()


def test_a_worker_that_cannot_set_up_its_gpu_is_never_handed_out(spec):
    sandbox = SlowSandbox()
    pool = WarmPool(sandbox=sandbox, size=1)
    try:
        worker = asked_to_set_up(pool, sandbox, spec)
        worker.peer.send({"type": "error", "status": "runtime_error", "message": "CUDA error: no device"})
        deadline = time.monotonic() + 10
        while pool.stats.start_failures == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert pool.stats.start_failures == 1 and "CUDA error: no device" in pool.stats.last_error
        assert worker not in pool._shelves[spec].ready and worker.channel.sock.fileno() == -1  # closed
    finally:
        pool.close()


def test_a_worker_lost_before_it_loaded_the_candidate_is_not_the_candidates_fault(spec):
    # killed after it was handed out, before it loaded anything: an infra_error a client retries elsewhere
    handle = ProcessSandbox().start(spec, WARM_LIMITS)
    assert handle.channel.recv(timeout=60).type == "ready"
    handle.set_up = True  # as the pool hands it out
    os.kill(handle.pid, signal.SIGKILL)
    handle.process.wait(timeout=10)
    result = Judge(spec, workers=Handed(handle)).evaluate(relu_request("lost"))
    assert result.status == Status.infra_error, result.message
    assert "before loading the candidate (not the candidate's fault)" in result.message
    assert "SIGKILL" in result.message
