"""The evaluation protocol: the only contract between the agent, the archive and evaluators.

Versioned pydantic models that round-trip through JSON. A change that breaks old clients
bumps PROTOCOL_VERSION.
"""

from __future__ import annotations

import hashlib
import json
from enum import Enum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

PROTOCOL_VERSION = "1"

# ceilings a request may ask for; the CLI names them in its usage errors
MAX_REPETITIONS = 100_000
MAX_TIME_LIMIT_S = 3600.0


class Backend(str, Enum):
    auto = "auto"
    triton_nvidia = "triton-nvidia"
    maca_metax = "maca-metax"
    triton_interpret = "triton-interpret"


class Status(str, Enum):
    ok = "ok"
    incorrect = "incorrect"
    compile_error = "compile_error"
    runtime_error = "runtime_error"
    timeout = "timeout"
    rejected = "rejected"  # an anti-hacking rule fired
    infra_error = "infra_error"  # the evaluator's fault: retry elsewhere, never held against the candidate


class Stage(str, Enum):
    """How far an evaluation got; failures are ranked by it (later is better)."""

    queued = "queued"
    static_check = "static_check"
    reference = "reference"
    load = "load"
    correctness = "correctness"
    timing = "timing"
    done = "done"


STAGE_ORDER = {stage: index for index, stage in enumerate(Stage)}


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", use_enum_values=False)


class CorrectnessSettings(_Model):
    """How outputs are compared.

    Tolerances left as None follow the dtype of each reference output, matching KernelBench's
    current protocol (torchbench-inspired `get_tolerance_for_precision`): atol = rtol = 1e-4 for
    float32 and 1e-2 for float16 / bfloat16. On top of elementwise closeness, the relative L2
    error ||out - ref|| / ||ref|| must stay under `max_relative_l2` so that a zero or constant
    output can never pass.
    """

    trials: int = Field(5, ge=1, le=100)
    seed: int = Field(42, ge=0, lt=2**63)
    atol: float | None = Field(None, gt=0)
    rtol: float | None = Field(None, ge=0)
    max_relative_l2: float | None = Field(None, gt=0)
    recheck_after_timing: int = Field(1, ge=0, le=10, description="trials re-run on new inputs after timing")


class TimingSettings(_Model):
    """How the candidate and its baselines are timed (GPU backends only)."""

    warmup: int = Field(10, ge=0, le=10_000, description="untimed calls first, at least this many")
    warmup_ms: float = Field(100.0, ge=0, le=10_000, description="...and for at least this long (GPU clocks ramp up)")
    repetitions: int = Field(100, ge=1, le=MAX_REPETITIONS)
    baselines: list[Literal["eager", "compile"]] = Field(default_factory=lambda: ["eager"])
    flush_l2: bool = True
    fresh_inputs: bool = Field(
        True, description="new random inputs before every repetition (defeats output caching)"
    )
    compared_repetitions: int = Field(
        6, ge=1, le=16, description="timed repetitions, drawn at random by the judge, whose outputs are compared "
        "too (at most `repetitions`; fewer when their copies would crowd the device)",
    )
    enabled: bool = True


class EvalRequest(_Model):
    protocol_version: str = PROTOCOL_VERSION
    task_name: str = Field(..., min_length=1, max_length=200)
    reference_source: str = Field(..., min_length=1)
    candidate_source: str = Field(..., min_length=1)
    backend: Backend = Backend.auto
    correctness: CorrectnessSettings = Field(default_factory=CorrectnessSettings)
    timing: TimingSettings = Field(default_factory=TimingSettings)
    strict: bool = Field(False, description="also ban torch compute ops in ModelNew.forward")
    time_limit_s: float = Field(300.0, gt=0, le=MAX_TIME_LIMIT_S)

    @field_validator("protocol_version")
    @classmethod
    def _known_version(cls, value: str) -> str:
        if value != PROTOCOL_VERSION:
            raise ValueError(f"protocol version {value!r} is not supported (this evaluator speaks {PROTOCOL_VERSION!r})")
        return value

    def digest(self) -> str:
        """Content hash: the same request submitted twice has the same digest."""
        payload = self.model_dump(mode="json")
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


class TrialResult(_Model):
    index: int
    passed: bool
    max_abs_error: float | None = None
    max_rel_error: float | None = None
    relative_l2_error: float | None = None
    mismatched: int = 0
    numel: int = 0
    message: str = ""
    phase: Literal["correctness", "timed", "recheck"] = "correctness"


class TimingStats(_Model):
    """Milliseconds per call over the timed repetitions."""

    median_ms: float
    mean_ms: float
    min_ms: float
    max_ms: float
    p10_ms: float
    p90_ms: float
    spread: float = Field(..., description="(p90 - p10) / median")
    samples: int

    @classmethod
    def from_samples(cls, samples_ms: list[float]) -> TimingStats:
        if not samples_ms:
            raise ValueError("no timing samples")
        ordered = sorted(samples_ms)
        n = len(ordered)

        def quantile(q: float) -> float:
            position = q * (n - 1)
            low = int(position)
            high = min(low + 1, n - 1)
            return ordered[low] + (ordered[high] - ordered[low]) * (position - low)

        median = quantile(0.5)
        return cls(
            median_ms=median,
            mean_ms=sum(ordered) / n,
            min_ms=ordered[0],
            max_ms=ordered[-1],
            p10_ms=quantile(0.1),
            p90_ms=quantile(0.9),
            spread=(quantile(0.9) - quantile(0.1)) / median if median > 0 else 0.0,
            samples=n,
        )


class Finding(_Model):
    """An anti-hacking rule that fired, or a warning about the task or candidate."""

    rule: str
    message: str
    line: int | None = None
    severity: Literal["reject", "warning", "info"] = "reject"


class Environment(_Model):
    backend: str | None = None
    device: str | None = None
    driver: str | None = None
    torch: str | None = None
    triton: str | None = None
    python: str | None = None
    host: str | None = None
    sandbox: str | None = None
    network_isolated: bool | None = None
    privileges_dropped: bool | None = None


class EvalResult(_Model):
    protocol_version: str = PROTOCOL_VERSION
    task_name: str
    status: Status
    stage: Stage
    message: str = ""
    log: str = Field("", description="trimmed stdout/stderr of the candidate's process")
    trials: list[TrialResult] = Field(default_factory=list)
    timing: TimingStats | None = None
    baselines: dict[str, TimingStats] = Field(default_factory=dict)
    speedup: float | None = Field(None, description="eager baseline median / candidate median")
    speedup_compile: float | None = Field(None, description="torch.compile baseline median / candidate median")
    findings: list[Finding] = Field(default_factory=list)
    environment: Environment = Field(default_factory=Environment)
    duration_s: float = 0.0
    phase_s: dict[str, float] = Field(default_factory=dict, description="seconds spent in each phase")
    request_digest: str | None = None

    @property
    def ok(self) -> bool:
        return self.status == Status.ok

    def summary(self) -> str:
        """One line for logs and prompts."""
        text = f"{self.status.value}"
        if self.speedup is not None:
            text += f" speedup={self.speedup:.3f}x"
        if self.message:
            text += f": {self.message.splitlines()[0][:200]}"
        return text
