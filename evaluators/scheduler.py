"""Scheduling evaluations over worker slots: one per GPU, N on the CPU, behind a bounded queue.

Each slot owns a Judge (its reference cache belongs to the device) and a thread that runs it.
Requests are deduplicated by digest; finished jobs are kept for a while, then dropped. Used by
the REST service and, without HTTP, by LocalEvaluator. Everything but the slot threads runs
on one asyncio loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import secrets
import threading
import time
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from evaluators.api import JobState
from evaluators.backends import BackendSpec, cuda_available, resolve
from evaluators.judge import Judge
from evaluators.loading import TaskError, check_reference_source
from evaluators.metrics import Tally
from evaluators.protocol import Backend, EvalRequest, EvalResult, Stage, Status
from evaluators.sandbox import Limits, ProcessSandbox, WorkerHandle, WorkerStartError
from evaluators.warm import WarmPool


class QueueFull(Exception):
    def __init__(self, message: str, retry_after_s: int) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class Unacceptable(Exception):
    """The request can never be evaluated here as sent (a broken reference, a missing backend)."""


@dataclass
class SchedulerConfig:
    devices: list[int] | None = None  # GPU indices as torch numbers them; None: every visible GPU
    cpu_workers: int | None = None  # interpreter slots; None: 1 on a host without GPUs, else 0
    warm: int = 0  # pre-started workers kept ready per slot
    max_queue: int | None = 256  # jobs waiting for a slot; None: unbounded
    result_ttl_s: float = 3600.0
    max_kept: int = 10_000  # finished jobs remembered at most


@dataclass
class Job:
    id: str
    request: EvalRequest
    digest: str
    backend: Backend
    submitted_at: float = field(default_factory=time.time)
    state: JobState = JobState.queued
    started_at: float | None = None
    finished_at: float | None = None
    slot: str | None = None
    result: EvalResult | None = None
    finished: asyncio.Event = field(default_factory=asyncio.Event, repr=False)


class Slot:
    """One place an evaluation runs: a device (or a CPU share), its Judge and its thread."""

    def __init__(self, name: str, spec: BackendSpec, sandbox: ProcessSandbox, warm: WarmPool | None) -> None:
        self.name = name
        self.spec = spec
        self.sandbox = sandbox
        self.warm = warm
        self.judge = Judge(spec, sandbox=sandbox, workers=self)
        self.thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"slot-{name}")
        self.job: Job | None = None
        self._lock = threading.Lock()
        self._worker: WorkerHandle | None = None
        self._cancelled = False

    def acquire(self, spec: BackendSpec, limits: Limits) -> WorkerHandle:
        """The Judge's worker hook: remembers the worker so that a cancel can kill it."""
        with self._lock:
            if self._cancelled:
                raise WorkerStartError("the evaluation was cancelled")
        handle = self.warm.acquire(spec, limits) if self.warm is not None else self.sandbox.start(spec, limits)
        with self._lock:
            self._worker = handle
            cancelled = self._cancelled
        if cancelled:
            handle.kill("the evaluation was cancelled")
        return handle

    def quiet(self, spec: BackendSpec) -> contextlib.AbstractContextManager[None]:
        """The Judge's timing hook: no warm worker starts on this device meanwhile."""
        return self.warm.quiet(spec) if self.warm is not None else contextlib.nullcontext()

    def begin(self, job: Job) -> None:
        with self._lock:
            self.job, self._worker, self._cancelled = job, None, False

    def evaluate(self, request: EvalRequest) -> EvalResult:
        try:
            return self.judge.evaluate(request)
        except Exception as error:  # a harness bug must not take the slot down
            return EvalResult(task_name=request.task_name, status=Status.infra_error, stage=Stage.queued,
                              message=f"the evaluator failed: {type(error).__name__}: {error}",
                              request_digest=request.digest())
        finally:
            with self._lock:
                self._worker = None

    def cancel(self, job: Job) -> None:
        """Stop `job`'s evaluation; nothing when the slot has moved on to another job meanwhile."""
        with self._lock:
            if self.job is not job:
                return
            self._cancelled = True
            worker = self._worker
        if worker is not None:
            worker.kill("the evaluation was cancelled")


@dataclass
class _Lane:
    """The slots of one backend and the jobs waiting for them."""

    backend: Backend
    slots: list[Slot]
    queue: asyncio.Queue[Job] = field(default_factory=asyncio.Queue)
    queued: int = 0
    mean_duration_s: float = 5.0

    @property
    def busy(self) -> int:
        return sum(slot.job is not None for slot in self.slots)


class Scheduler:
    def __init__(self, config: SchedulerConfig | None = None, sandbox: ProcessSandbox | None = None) -> None:
        self.config = config or SchedulerConfig()
        self.sandbox = sandbox if sandbox is not None else ProcessSandbox()
        self.warm = WarmPool(self.sandbox, size=self.config.warm) if self.config.warm > 0 else None
        self.lanes: dict[Backend, _Lane] = {}
        self.jobs: OrderedDict[str, Job] = OrderedDict()  # in submission order
        self.by_digest: dict[str, str] = {}
        self.tally = Tally()
        self.started_at = time.time()
        self._tasks: list[asyncio.Task[None]] = []
        self._build_lanes()

    def _build_lanes(self) -> None:
        devices = self.config.devices
        if devices is None:
            devices = list(range(_device_count())) if cuda_available() else []
        elif devices and not cuda_available():
            raise Unacceptable(f"GPU devices {devices} were asked for, but torch sees no GPU on this host")
        for index in devices:
            if index >= _device_count():
                raise Unacceptable(f"GPU {index} does not exist: torch sees {_device_count()} GPU(s)")
            spec = resolve(Backend.auto, index)
            self._lane(spec.backend).slots.append(self._slot(f"{spec.torch_device}", spec))
        cpu_workers = self.config.cpu_workers
        if cpu_workers is None:
            cpu_workers = 0 if devices else 1
        for number in range(cpu_workers):
            spec = resolve(Backend.triton_interpret)
            self._lane(spec.backend).slots.append(self._slot(f"cpu:{number}", spec))
        if not self.lanes:
            raise Unacceptable("no worker slots: pass GPU devices or at least one CPU worker")

    def _lane(self, backend: Backend) -> _Lane:
        return self.lanes.setdefault(backend, _Lane(backend, []))

    def _slot(self, name: str, spec: BackendSpec) -> Slot:
        slot = Slot(name, spec, self.sandbox, self.warm)
        if self.warm is not None:
            count = sum(s.spec == spec for lane in self.lanes.values() for s in lane.slots) + 1
            self.warm.prepare(spec, self.config.warm * count)
        return slot

    # -- life cycle ---------------------------------------------------------------------

    async def start(self) -> None:
        for lane in self.lanes.values():
            for slot in lane.slots:
                self._tasks.append(asyncio.create_task(self._run(lane, slot), name=f"slot {slot.name}"))
        self._tasks.append(asyncio.create_task(self._sweep_forever(), name="sweep"))

    async def stop(self) -> None:
        for lane in self.lanes.values():
            for slot in lane.slots:
                if slot.job is not None:
                    threading.Thread(target=slot.cancel, args=(slot.job,), daemon=True).start()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for lane in self.lanes.values():
            for slot in lane.slots:
                slot.thread.shutdown(wait=False, cancel_futures=True)
        if self.warm is not None:
            await asyncio.to_thread(self.warm.close)

    # -- the API ------------------------------------------------------------------------

    def submit(self, request: EvalRequest) -> tuple[Job, bool]:
        """(job, deduplicated): the same request again gets the job already made for it."""
        digest = request.digest()
        existing = self.jobs.get(self.by_digest.get(digest, ""))
        if existing is not None and _reusable(existing):
            self.tally.submissions["deduplicated"] += 1
            return existing, True
        lane = self.route(request)
        try:
            check_reference_source(request.reference_source)
        except TaskError as error:
            self.tally.submissions["refused"] += 1
            raise Unacceptable(f"reference_source: {error}") from None
        limit = self.config.max_queue
        if limit is not None and lane.queued >= limit:
            self.tally.submissions["queue_full"] += 1
            retry = self.retry_after(lane)
            raise QueueFull(f"the {lane.backend.value} queue is full ({lane.queued} waiting for "
                            f"{len(lane.slots)} slot(s)); retry in about {retry} s", retry)
        job = Job(id=secrets.token_hex(8), request=request, digest=digest, backend=lane.backend)
        self.jobs[job.id] = job
        self.by_digest[digest] = job.id
        lane.queued += 1
        lane.queue.put_nowait(job)
        self.tally.submissions["accepted"] += 1
        return job, False

    def route(self, request: EvalRequest) -> _Lane:
        wanted = request.backend
        if wanted == Backend.auto:
            gpu = [lane for backend, lane in self.lanes.items() if backend != Backend.triton_interpret]
            return gpu[0] if gpu else self.lanes[Backend.triton_interpret]
        if wanted in self.lanes:
            return self.lanes[wanted]
        offered = ", ".join(backend.value for backend in self.lanes)
        raise Unacceptable(f"backend {wanted.value!r} is not served here; this evaluator offers: {offered}")

    def get(self, job_id: str) -> Job | None:
        return self.jobs.get(job_id)

    async def wait(self, job: Job, timeout_s: float | None) -> Job:
        try:
            await asyncio.wait_for(asyncio.shield(job.finished.wait()), timeout_s)
        except asyncio.TimeoutError:
            pass
        return job

    def cancel(self, job: Job) -> bool:
        """False when the job had already finished."""
        if job.state in (JobState.done, JobState.cancelled):
            return job.state == JobState.cancelled
        lane = self.lanes[job.backend]
        if job.state == JobState.queued:
            lane.queued -= 1  # it stays in the asyncio queue; the slot skips it
        else:
            slot = next((s for s in lane.slots if s.job is job), None)
            if slot is not None:
                threading.Thread(target=slot.cancel, args=(job,), daemon=True).start()
        job.state, job.finished_at = JobState.cancelled, time.time()
        self.tally.evaluations["cancelled"] += 1
        job.finished.set()
        return True

    def recent(self, limit: int, state: JobState | None = None) -> list[Job]:
        found = []
        for job in reversed(self.jobs.values()):
            if state is None or job.state == state:
                found.append(job)
                if len(found) >= limit:
                    break
        return found

    def retry_after(self, lane: _Lane) -> int:
        waves = (lane.queued + lane.busy) / max(1, len(lane.slots))
        return max(1, min(600, math.ceil(waves * lane.mean_duration_s)))

    def capacity(self) -> dict[str, dict[str, int]]:
        return {
            backend.value: {"slots": len(lane.slots), "busy": lane.busy, "queued": lane.queued,
                            "free": max(0, len(lane.slots) - lane.busy - lane.queued)}
            for backend, lane in self.lanes.items()
        }

    def workers(self) -> list[dict[str, Any]]:
        listed = []
        for lane in self.lanes.values():
            for slot in lane.slots:
                listed.append({
                    "slot": slot.name, "backend": slot.spec.backend.value, "device": slot.spec.torch_device,
                    "busy": slot.job is not None, "job": slot.job.id if slot.job else None,
                    "warm_ready": self.warm.ready(slot.spec) if self.warm else 0,
                })
        return listed

    # -- the slots ----------------------------------------------------------------------

    async def _run(self, lane: _Lane, slot: Slot) -> None:
        loop = asyncio.get_running_loop()
        while True:
            job = await lane.queue.get()
            if job.state != JobState.queued:
                continue  # cancelled while it waited
            lane.queued -= 1
            job.state, job.started_at, job.slot = JobState.running, time.time(), slot.name
            slot.begin(job)
            try:
                result = await loop.run_in_executor(slot.thread, slot.evaluate, job.request)
            finally:
                slot.job = None
            self._finish(lane, job, result)

    def _finish(self, lane: _Lane, job: Job, result: EvalResult) -> None:
        now = time.time()
        duration = now - (job.started_at or now)
        lane.mean_duration_s = 0.8 * lane.mean_duration_s + 0.2 * duration
        self.tally.duration.observe(duration)
        if job.state == JobState.cancelled:
            return  # the answer was already given; whatever the killed worker left is not a verdict
        job.state, job.finished_at, job.result = JobState.done, now, result
        self.tally.evaluations[result.status.value] += 1
        self.tally.latency.observe(now - job.submitted_at)
        job.finished.set()

    async def _sweep_forever(self) -> None:
        while True:
            await asyncio.sleep(min(60.0, max(1.0, self.config.result_ttl_s / 4)))
            self.sweep()

    def sweep(self, now: float | None = None) -> None:
        """Forget finished jobs older than the retention time, and the oldest beyond max_kept."""
        now = time.time() if now is None else now
        finished = [job for job in self.jobs.values() if job.finished_at is not None]
        excess = len(finished) - self.config.max_kept
        for job in finished:
            if excess > 0 or now - job.finished_at > self.config.result_ttl_s:  # type: ignore[operator]
                excess -= 1
                del self.jobs[job.id]
                if self.by_digest.get(job.digest) == job.id:
                    del self.by_digest[job.digest]


def _reusable(job: Job) -> bool:
    """A resubmission joins this job unless it was cancelled or failed for the evaluator's sake."""
    if job.state == JobState.cancelled:
        return False
    return not (job.result is not None and job.result.status == Status.infra_error)


def _device_count() -> int:
    import torch

    return int(torch.cuda.device_count())
