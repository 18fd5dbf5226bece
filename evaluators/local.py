"""LocalEvaluator: the evaluator service's scheduling in this process, with no HTTP.

The embedded default for a search: a Judge per device (and per CPU slot), an optional warm
pool, and the same `evaluate` as a remote EvaluatorPool.
"""

from __future__ import annotations

import asyncio

from evaluators.api import EvaluationCancelled, EvaluationRefused, EvaluationTimeout
from evaluators.protocol import EvalRequest, EvalResult, Status
from evaluators.sandbox import ProcessSandbox
from evaluators.scheduler import Scheduler, SchedulerConfig, Unacceptable


class LocalEvaluator:
    """Evaluates here: one slot per GPU (or `cpu_workers` interpreter slots), optionally warm."""

    def __init__(self, devices: list[int] | None = None, cpu_workers: int | None = None, warm: int = 0,
                 sandbox: ProcessSandbox | None = None, infra_retries: int = 1) -> None:
        config = SchedulerConfig(devices=devices, cpu_workers=cpu_workers, warm=warm, max_queue=None)
        self.scheduler = Scheduler(config, sandbox=sandbox)
        self.infra_retries = infra_retries
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closed = False

    async def __aenter__(self) -> LocalEvaluator:
        await self._start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def capacity(self, backend: str = "auto") -> int:
        lane = self.scheduler.capacity()
        if backend == "auto":
            gpu = [name for name in lane if name != "triton-interpret"]
            backend = gpu[0] if gpu else "triton-interpret"
        return lane[backend]["slots"] if backend in lane else 0

    async def evaluate(self, request: EvalRequest, timeout_s: float | None = None) -> EvalResult:
        await self._start()
        infra_left = self.infra_retries
        while True:
            try:
                job, _ = self.scheduler.submit(request)
            except Unacceptable as error:
                raise EvaluationRefused(422, "unacceptable", str(error)) from None
            try:
                await asyncio.wait_for(asyncio.shield(job.finished.wait()), timeout_s)
            except asyncio.TimeoutError:
                raise EvaluationTimeout(f"no result for {request.task_name} within {timeout_s:g} s") from None
            if job.result is None:
                raise EvaluationCancelled(f"the evaluation of {request.task_name} was cancelled")
            if job.result.status == Status.infra_error and infra_left > 0:
                infra_left -= 1  # an infra_error job is never reused, so this submits afresh
                continue
            return job.result

    async def aclose(self) -> None:
        """Ends running evaluations and warm workers; the evaluator cannot be used afterwards."""
        if self._closed:
            return
        self._closed = True
        if self._loop is not None:
            await self.scheduler.stop()
        elif self.scheduler.warm is not None:
            self.scheduler.warm.close()

    async def _start(self) -> None:
        if self._closed:
            raise RuntimeError("this LocalEvaluator was closed; make a new one")
        loop = asyncio.get_running_loop()
        if self._loop is None:
            self._loop = loop
            await self.scheduler.start()
        elif self._loop is not loop:
            raise RuntimeError("a LocalEvaluator is bound to the event loop it first ran in")
