"""What the archive hands back: plain dataclasses detached from the database, safe to keep and pass around."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum
from typing import Any

from evaluators.protocol import EvalResult, Stage, Status


class RunStatus(str, Enum):
    running = "running"
    finished = "finished"
    stopped = "stopped"


@dataclass(frozen=True)
class Run:
    id: int
    task_name: str
    reference_source: str
    reference_hash: str
    config: dict[str, Any]
    status: RunStatus
    seed: int
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class Program:
    id: int
    run_id: int
    source: str
    normalized_hash: str
    parent_id: int | None
    inspiration_ids: tuple[int, ...]
    operator: str
    model: str | None
    generation: int
    island: int
    metadata: dict[str, Any]
    created_at: datetime
    # an earlier program of the same run with the same normalized source, when this one repeats it
    duplicate_of: int | None = None


@dataclass(frozen=True)
class Evaluation:
    id: int
    program_id: int
    status: Status
    stage: Stage
    speedup: float | None
    speedup_compile: float | None
    result: EvalResult
    backend: str
    device: str | None
    created_at: datetime


@dataclass(frozen=True)
class LlmCall:
    id: int
    run_id: int
    program_id: int | None
    model: str
    prompt: str
    response: str
    prompt_tokens: int | None
    completion_tokens: int | None
    cost: float | None
    latency_s: float | None
    error: str | None
    created_at: datetime


@dataclass(frozen=True)
class GenerationStats:
    """One generation of a run: its programs and how the evaluated ones fared (latest result of each)."""

    generation: int
    count: int
    evaluated: int
    ok: int
    best_speedup: float | None
    mean_speedup: float | None
    statuses: dict[str, int] = field(default_factory=dict)
