"""The REST API's wire models (what the service answers, clients read) and the errors callers see.

Requests are `protocol.EvalRequest`; these wrap a job around its `EvalResult`. No torch and no
HTTP library here: remote clients and the in-process LocalEvaluator share this module.
"""

from __future__ import annotations

from enum import Enum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from evaluators.protocol import EvalResult, Status

API_PREFIX = "/v1"
TOKEN_ENV = "KERNELSMITH_EVALUATOR_TOKEN"


class JobState(str, Enum):
    queued = "queued"
    running = "running"
    done = "done"
    cancelled = "cancelled"


class _Wire(BaseModel):
    model_config = ConfigDict(extra="ignore")  # newer servers may add fields; old clients read on


class JobView(_Wire):
    """One evaluation job. `result` is set once `state` is `done`."""

    id: str
    state: JobState
    task_name: str
    backend: str = Field(..., description="the backend the job was routed to")
    request_digest: str
    deduplicated: bool = Field(False, description="this submission joined an earlier identical one")
    submitted_at: float
    started_at: float | None = None
    finished_at: float | None = None
    slot: str | None = None
    queue_position: int | None = None
    status: Status | None = Field(None, description="the result's status, once done")
    result: EvalResult | None = None

    @property
    def finished(self) -> bool:
        return self.state in (JobState.done, JobState.cancelled)


class JobList(_Wire):
    evaluations: list[JobView]


class Capacity(_Wire):
    slots: int
    busy: int
    queued: int
    free: int


class ServiceInfo(_Wire):
    service: str = "kernelsmith-evaluator"
    protocol_version: str
    versions: dict[str, str]
    backends: list[str]
    devices: list[dict[str, Any]]
    workers: list[dict[str, Any]]
    warm: dict[str, Any]
    queue_depth: int
    max_queue: int | None
    capacity: dict[str, Capacity]
    limits: dict[str, Any]
    uptime_s: float

    def lane(self, backend: str = "auto") -> Capacity | None:
        """The capacity that requests for `backend` draw on (`auto` goes to a GPU when there is one)."""
        if backend == "auto":
            gpu = [name for name in self.capacity if name != "triton-interpret"]
            backend = gpu[0] if gpu else "triton-interpret"
        return self.capacity.get(backend)


class ErrorBody(_Wire):
    """Every 4xx and 5xx answer: a machine-readable code and a message saying what was wrong."""

    error: str
    message: str


class EvaluatorError(Exception):
    """Base of everything a client raises."""


class EvaluatorUnavailable(EvaluatorError):
    """The service did not answer (connection refused or reset, 5xx) after every retry."""


class EvaluatorBadReply(EvaluatorUnavailable):
    """Something answered, but not as an evaluator does: a body that is not JSON (a proxy's page) or not
    the expected shape. Treated like no answer, except that trying the same service again will not help."""


class EvaluationRefused(EvaluatorError):
    """The service refused the request itself (4xx); sending it again will not help."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status, self.code, self.message = status, code, message


class EvaluatorBusy(EvaluatorError):
    """The service's queue is full (429); `evaluate` waits this out, `submit` raises it."""

    def __init__(self, message: str, retry_after_s: float) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class EvaluationUnknown(EvaluatorError):
    """The service does not know this evaluation (it restarted, or the result expired)."""


class EvaluationCancelled(EvaluatorError):
    """Someone cancelled the evaluation on the service before it finished."""


class EvaluationTimeout(EvaluatorError):
    """No result within the caller's timeout (the job may still finish on the service)."""
