"""Clients of the evaluator service: `EvaluatorClient` (sync) and `AsyncEvaluatorClient`.

`evaluate(request) -> EvalResult` submits, long-polls and retries: on connection errors and 5xx
(with back-off), on 429 (after Retry-After), on infra_error results and on jobs the service lost
(resubmitting, a few times). Requests are idempotent by digest, so a retried submit never evaluates
twice. `EvaluatorPool` (many endpoints) and `LocalEvaluator` (in-process, no HTTP) are importable
from here too.
"""

from __future__ import annotations

import asyncio
import os
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

import httpx
from pydantic import BaseModel

from evaluators.api import (
    API_PREFIX,
    TOKEN_ENV,
    EvaluationCancelled,
    EvaluationRefused,
    EvaluationTimeout,
    EvaluationUnknown,
    EvaluatorBadReply,
    EvaluatorBusy,
    EvaluatorError,
    EvaluatorUnavailable,
    JobList,
    JobState,
    JobView,
    ServiceInfo,
)
from evaluators.protocol import EvalRequest, EvalResult, Stage, Status

if TYPE_CHECKING:
    from evaluators.local import LocalEvaluator
    from evaluators.pool import EvaluatorPool

__all__ = ["AsyncEvaluatorClient", "Evaluator", "EvaluatorBadReply", "EvaluatorBusy", "EvaluatorClient",
           "EvaluatorError", "EvaluatorPool", "EvaluatorUnavailable", "EvaluationCancelled", "EvaluationRefused",
           "EvaluationTimeout", "EvaluationUnknown", "LocalEvaluator", "RetryPolicy", "open_evaluator"]


class Evaluator(Protocol):
    """What the evolution loop needs: LocalEvaluator, EvaluatorPool and AsyncEvaluatorClient all fit."""

    async def evaluate(self, request: EvalRequest, timeout_s: float | None = None) -> EvalResult: ...

    async def capacity(self, backend: str = "auto") -> int: ...

    async def aclose(self) -> None: ...


@dataclass
class RetryPolicy:
    attempts: int = 4  # tries per HTTP call when the service does not answer
    backoff_s: float = 0.25  # first pause, doubled after each failure
    max_backoff_s: float = 5.0
    infra_retries: int = 2  # resubmissions after an infra_error result
    lost_retries: int = 3  # resubmissions after the service forgot an accepted job (404: it restarted)
    max_queue_wait_s: float = 600.0  # how long 429 answers are waited out without a caller's timeout

    def pause(self, failures: int) -> float:
        return min(self.max_backoff_s, self.backoff_s * 2 ** max(0, failures - 1))


Reply = TypeVar("Reply", bound=BaseModel)


def _read(response: httpx.Response, model: type[Reply]) -> Reply:
    _raise_for_error(response)
    try:
        return model.model_validate(response.json())
    except ValueError:  # not JSON, or not this shape: whatever answered is not an evaluator
        raise EvaluatorBadReply(f"{response.request.method} {response.request.url} answered HTTP "
                                f"{response.status_code} with something other than an evaluator's reply: "
                                f"{response.text[:200]!r}") from None


def _job_of(response: httpx.Response) -> JobView:
    return _read(response, JobView)


def _raise_for_error(response: httpx.Response) -> None:
    if response.status_code < 400:
        return
    try:
        body = response.json()
        code, message = str(body.get("error", "error")), str(body.get("message", body))
    except (ValueError, AttributeError):
        code, message = "error", response.text[:500]
    if response.status_code >= 500:
        raise _ServerTrouble(f"{response.status_code} {code}: {message}")
    if response.status_code == 429:
        raise EvaluatorBusy(message, _retry_after(response))
    if response.status_code == 404 and code == "unknown_evaluation":
        raise EvaluationUnknown(message)
    raise EvaluationRefused(response.status_code, code, message)


def _retry_after(response: httpx.Response) -> float:
    try:
        return max(0.1, float(response.headers.get("Retry-After", "1")))
    except ValueError:
        return 1.0


class _ServerTrouble(Exception):
    """A 5xx: retried like a connection error."""


_RETRIED = (httpx.TransportError, _ServerTrouble)


def _headers(token: str | None) -> dict[str, str]:
    token = token if token is not None else os.environ.get(TOKEN_ENV)
    return {"Authorization": f"Bearer {token}"} if token else {}


def _remaining(deadline: float | None) -> float | None:
    return None if deadline is None else deadline - time.monotonic()


def _outcome(job: JobView, request: EvalRequest) -> EvalResult:
    if job.state == JobState.cancelled:
        raise EvaluationCancelled(f"evaluation {job.id} of {request.task_name} was cancelled on the service")
    assert job.result is not None
    return job.result


def _lost(request: EvalRequest, base_url: str, times: int, error: EvaluationUnknown) -> EvalResult:
    """The evaluator's fault, not the candidate's: an infra_error another evaluator may retry."""
    return EvalResult(task_name=request.task_name, status=Status.infra_error, stage=Stage.queued,
                      message=f"{base_url} lost the evaluation of {request.task_name} {times} times after accepting "
                              f"it (is it restarting over and over?): {error}", request_digest=request.digest())


class EvaluatorClient:
    """A synchronous client of one evaluator service."""

    def __init__(self, base_url: str, token: str | None = None, *, timeout_s: float = 30.0, wait_s: float = 30.0,
                 retry: RetryPolicy | None = None, transport: httpx.BaseTransport | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.wait_s = wait_s  # one long poll; the service caps it (60 s by default)
        self.retry = retry or RetryPolicy()
        self.http = httpx.Client(base_url=self.base_url, headers=_headers(token), transport=transport,
                                 timeout=httpx.Timeout(timeout_s, connect=min(timeout_s, 5.0)))

    def __enter__(self) -> EvaluatorClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.http.close()

    def health(self) -> bool:
        try:
            return self.http.get(f"{API_PREFIX}/health", timeout=5.0).status_code == 200
        except httpx.TransportError:
            return False

    def info(self) -> ServiceInfo:
        return _read(self._call("GET", f"{API_PREFIX}/info"), ServiceInfo)

    def submit(self, request: EvalRequest) -> JobView:
        return _job_of(self._call("POST", f"{API_PREFIX}/evaluations", content=request.model_dump_json(),
                                      headers={"Content-Type": "application/json"}))

    def job(self, job_id: str) -> JobView:
        return _job_of(self._call("GET", f"{API_PREFIX}/evaluations/{job_id}"))

    def wait(self, job_id: str, timeout_s: float | None = None) -> JobView:
        """One long poll: the job when it finishes, or as it stands after `timeout_s`."""
        poll = self.wait_s if timeout_s is None else max(0.0, min(timeout_s, self.wait_s))
        return _job_of(self._call("GET", f"{API_PREFIX}/evaluations/{job_id}/wait", params={"timeout": poll},
                                      timeout=poll + 15.0))

    def cancel(self, job_id: str) -> JobView:
        return _job_of(self._call("DELETE", f"{API_PREFIX}/evaluations/{job_id}"))

    def recent(self, limit: int = 50) -> list[JobView]:
        return _read(self._call("GET", f"{API_PREFIX}/evaluations", params={"limit": limit}), JobList).evaluations

    def evaluate(self, request: EvalRequest, timeout_s: float | None = None,
                 infra_retries: int | None = None) -> EvalResult:
        """Submit, wait and return the result; raises EvaluatorError subclasses when it cannot."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        infra_left = self.retry.infra_retries if infra_retries is None else infra_retries
        lost = 0
        while True:
            job = self._submit_when_room(request, deadline)
            try:
                while not job.finished:
                    remaining = _remaining(deadline)
                    if remaining is not None and remaining <= 0:
                        raise EvaluationTimeout(f"no result for {request.task_name} within {timeout_s:g} s "
                                                f"(job {job.id} on {self.base_url})")
                    job = self.wait(job.id, remaining)
            except EvaluationUnknown as error:
                lost += 1  # the service restarted or forgot it: submit again, but not forever
                if lost > self.retry.lost_retries:
                    return _lost(request, self.base_url, lost, error)
                time.sleep(self.retry.pause(lost))
                continue
            result = _outcome(job, request)
            if result.status == Status.infra_error and infra_left > 0:
                infra_left -= 1
                time.sleep(self.retry.pause(1))
                continue
            return result

    def _submit_when_room(self, request: EvalRequest, deadline: float | None) -> JobView:
        give_up = deadline if deadline is not None else time.monotonic() + self.retry.max_queue_wait_s
        while True:
            try:
                return self.submit(request)
            except EvaluatorBusy as busy:
                pause = busy.retry_after_s
                if time.monotonic() + pause > give_up:
                    raise EvaluationTimeout(f"{self.base_url} stayed full: {busy}") from None
                time.sleep(pause)

    def _call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        failures = 0
        while True:
            try:
                response = self.http.request(method, path, **kwargs)
                if response.status_code >= 500:
                    _raise_for_error(response)
                return response
            except _RETRIED as error:
                failures += 1
                if failures >= self.retry.attempts:
                    raise EvaluatorUnavailable(f"{self.base_url} did not answer {method} {path} after "
                                               f"{failures} tries: {error or type(error).__name__}") from None
                time.sleep(self.retry.pause(failures))


class AsyncEvaluatorClient:
    """The asyncio twin of EvaluatorClient; it also fits the Evaluator protocol."""

    def __init__(self, base_url: str, token: str | None = None, *, timeout_s: float = 30.0, wait_s: float = 30.0,
                 retry: RetryPolicy | None = None, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.wait_s = wait_s
        self.retry = retry or RetryPolicy()
        self.http = httpx.AsyncClient(base_url=self.base_url, headers=_headers(token), transport=transport,
                                      timeout=httpx.Timeout(timeout_s, connect=min(timeout_s, 5.0)),
                                      limits=httpx.Limits(max_connections=None, max_keepalive_connections=64))

    async def __aenter__(self) -> AsyncEvaluatorClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self.http.aclose()

    async def health(self) -> bool:
        try:
            return (await self.http.get(f"{API_PREFIX}/health", timeout=5.0)).status_code == 200
        except httpx.TransportError:
            return False

    async def info(self, timeout_s: float | None = None) -> ServiceInfo:
        kwargs = {} if timeout_s is None else {"timeout": timeout_s}
        return _read(await self._call("GET", f"{API_PREFIX}/info", **kwargs), ServiceInfo)

    async def capacity(self, backend: str = "auto") -> int:
        lane = (await self.info()).lane(backend)
        return lane.slots if lane else 0

    async def submit(self, request: EvalRequest) -> JobView:
        return _job_of(await self._call("POST", f"{API_PREFIX}/evaluations", content=request.model_dump_json(),
                                            headers={"Content-Type": "application/json"}))

    async def job(self, job_id: str) -> JobView:
        return _job_of(await self._call("GET", f"{API_PREFIX}/evaluations/{job_id}"))

    async def wait(self, job_id: str, timeout_s: float | None = None) -> JobView:
        poll = self.wait_s if timeout_s is None else max(0.0, min(timeout_s, self.wait_s))
        return _job_of(await self._call("GET", f"{API_PREFIX}/evaluations/{job_id}/wait",
                                            params={"timeout": poll}, timeout=poll + 15.0))

    async def cancel(self, job_id: str) -> JobView:
        return _job_of(await self._call("DELETE", f"{API_PREFIX}/evaluations/{job_id}"))

    async def evaluate(self, request: EvalRequest, timeout_s: float | None = None,
                       infra_retries: int | None = None) -> EvalResult:
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        infra_left = self.retry.infra_retries if infra_retries is None else infra_retries
        lost = 0
        while True:
            job = await self._submit_when_room(request, deadline)
            try:
                while not job.finished:
                    remaining = _remaining(deadline)
                    if remaining is not None and remaining <= 0:
                        raise EvaluationTimeout(f"no result for {request.task_name} within {timeout_s:g} s "
                                                f"(job {job.id} on {self.base_url})")
                    job = await self.wait(job.id, remaining)
            except EvaluationUnknown as error:
                lost += 1
                if lost > self.retry.lost_retries:
                    return _lost(request, self.base_url, lost, error)
                await asyncio.sleep(self.retry.pause(lost))
                continue
            result = _outcome(job, request)
            if result.status == Status.infra_error and infra_left > 0:
                infra_left -= 1
                await asyncio.sleep(self.retry.pause(1))
                continue
            return result

    async def _submit_when_room(self, request: EvalRequest, deadline: float | None) -> JobView:
        give_up = deadline if deadline is not None else time.monotonic() + self.retry.max_queue_wait_s
        while True:
            try:
                return await self.submit(request)
            except EvaluatorBusy as busy:
                pause = busy.retry_after_s
                if time.monotonic() + pause > give_up:
                    raise EvaluationTimeout(f"{self.base_url} stayed full: {busy}") from None
                await asyncio.sleep(pause)

    async def _call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        failures = 0
        while True:
            try:
                response = await self.http.request(method, path, **kwargs)
                if response.status_code >= 500:
                    _raise_for_error(response)
                return response
            except _RETRIED as error:
                failures += 1
                if failures >= self.retry.attempts:
                    raise EvaluatorUnavailable(f"{self.base_url} did not answer {method} {path} after "
                                               f"{failures} tries: {error or type(error).__name__}") from None
                await asyncio.sleep(self.retry.pause(failures))


def open_evaluator(urls: list[str] | None = None, token: str | None = None, **local_options: Any) -> Evaluator:
    """The evaluator a search uses: a pool over `urls`, or in-process when there are none."""
    if urls:
        from evaluators.pool import EvaluatorPool

        return EvaluatorPool(urls, token=token)
    from evaluators.local import LocalEvaluator

    return LocalEvaluator(**local_options)


def __getattr__(name: str) -> Any:
    # imported on use: LocalEvaluator pulls in torch and the harness, which remote clients never need
    if name == "EvaluatorPool":
        from evaluators.pool import EvaluatorPool

        return EvaluatorPool
    if name == "LocalEvaluator":
        from evaluators.local import LocalEvaluator

        return LocalEvaluator
    raise AttributeError(name)
