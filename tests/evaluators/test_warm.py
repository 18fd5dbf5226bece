"""The warm pool: pre-started sandboxed workers, each used for one candidate, dead ones replaced."""

from __future__ import annotations

import os
import signal

import pytest

from evaluators.backends import resolve
from evaluators.judge import Judge
from evaluators.protocol import Backend, Status
from evaluators.sandbox import Limits
from evaluators.warm import WarmPool, cpu_seconds
from tests.evaluators.servers import relu_request


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


def cpu_limit(pid: int) -> int:
    with open(f"/proc/{pid}/limits") as f:
        line = next(line for line in f if line.startswith("Max cpu time"))
    return int(line.split()[3])


def test_a_judge_gets_a_started_worker_held_to_the_request_limits(pool, spec, ready):
    assert ready.alive()
    handle = pool.acquire(spec, Limits(cpu_s=100))
    try:
        assert handle is ready
        # start-up is not charged to the candidate, and it gets no more CPU than its request allows
        assert cpu_limit(handle.pid) == int(cpu_seconds(handle.pid)) + 1 + 100
        assert handle.channel.recv(timeout=5).type == "ready"  # it connected long before it was needed
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
        assert handle.pid != ready.pid and handle.alive()
        assert handle.channel.recv(timeout=30).type == "ready"
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
