"""The judge's rules on what a worker reports at run time: guard findings, torch ops, timing reports,
the outputs of timed calls, the speed of light.

Each rule reads what the (untrusted) worker sent, validates its shape, and either lets the
evaluation go on or ends it with a Verdict naming the rule.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from evaluators.compare import compare_outputs
from evaluators.ops import recomputes_reference
from evaluators.protocol import CorrectnessSettings, Finding, Stage, Status, TrialResult
from evaluators.speed_of_light import Bound
from evaluators.timing import MAX_WARMUP_CALLS, Sample

if TYPE_CHECKING:
    import torch

    from evaluators.reference import ReferenceData


class Verdict(Exception):
    """Ends an evaluation early with a status."""

    def __init__(self, status: Status, stage: Stage, message: str, finding: Finding | None = None) -> None:
        super().__init__(message)
        self.status, self.stage, self.message, self.finding = status, stage, message, finding


def rejection(finding: Finding, stage: Stage) -> Verdict:
    where = f" (candidate.py line {finding.line})" if finding.line else ""
    return Verdict(Status.rejected, stage, f"{finding.rule}{where}: {finding.message}", finding)


def _malformed(what: str, stage: Stage, detail: str | None = None) -> Verdict:
    return Verdict(Status.rejected, stage, f"the worker's {what} is malformed",
                   Finding(rule="channel-tampering", message=detail or f"malformed {what}"))


def guard_findings(header: dict[str, Any], stage: Stage) -> list[Finding]:
    """What the worker's runtime guards saw (evaluators/guards.py); each finding rejects the candidate."""
    found = header.get("guard", [])
    valid = isinstance(found, list) and all(
        isinstance(f, dict) and isinstance(f.get("rule"), str) and isinstance(f.get("message"), str)
        and (f.get("line") is None or isinstance(f.get("line"), int)) for f in found
    )
    if not valid:
        raise _malformed("guard report", stage)
    return [Finding(rule=f["rule"][:64], message=f["message"][:500], line=f.get("line")) for f in found]


def launches_verdict(header: dict[str, Any], what: str, stage: Stage) -> None:
    """A checked forward must have launched a Triton kernel, through launch hooks still in place."""
    if header.get("launch_hooks_intact") is False:
        raise Verdict(Status.rejected, stage, "the Triton launch counter was tampered with",
                      Finding(rule="launch-hook-tampering", message="the launch counter was replaced"))
    launches = header.get("launches")
    if not isinstance(launches, int) or launches < 1:
        raise Verdict(
            Status.rejected, stage,
            f"no Triton kernel was launched during the {what}: ModelNew.forward must launch a Triton kernel "
            "(kernel[grid](...); on a GPU, a kernel compiled with .warmup() and launched directly counts too)",
            Finding(rule="no-triton-launch", message="forward launched no Triton kernel"),
        )


def ops_verdict(ops: Any, strict: bool, reference_ops: list[str], stage: Stage) -> Finding | None:
    """Torch compute ops forward ran outside its kernels: rejected in strict mode or when they redo
    the whole reference; otherwise an info finding (returned) lists them."""
    if not isinstance(ops, list) or not all(isinstance(op, str) for op in ops):
        raise _malformed("op report", stage)
    if not ops:
        return None
    shown = ", ".join(ops[:8]) + (" ..." if len(ops) > 8 else "")
    if "<op recorder removed>" in ops:
        raise rejection(Finding(rule="dispatch-tampering", message="forward removed the harness's op recorder"), stage)
    if strict:
        raise rejection(Finding(rule="strict-torch-compute", message=f"strict mode: forward ran torch compute ops "
                                f"({shown})"), stage)
    if recomputes_reference(ops, reference_ops):
        raise rejection(Finding(rule="reference-recomputed", message="forward recomputes the whole reference with "
                                f"torch ({', '.join(reference_ops)}); the Triton kernels must do the work"), stage)
    return Finding(rule="torch-compute", severity="info", message=f"forward also ran torch compute ops: {shown}")


def speed_of_light_verdict(median_ms: float, bound: Bound) -> None:
    if median_ms < bound.floor_ms:
        raise Verdict(
            Status.rejected, Stage.timing,
            f"{median_ms:.4f} ms per call is faster than the device allows ({bound.floor_ms:.4f} ms: {bound.reason})",
            Finding(rule="speed-of-light", message=f"median {median_ms:.4f} ms under the physical floor "
                    f"{bound.floor_ms:.4f} ms ({bound.reason})"),
        )


def timing_samples(header: dict[str, Any], repetitions: int, min_warmup: int) -> list[Sample]:
    """The timed repetitions the worker reports, once its report passes every rule on its shape."""
    stage = Stage.timing
    tampered = header.get("tampered") or []
    if tampered:
        replaced = ", ".join(map(str, tampered))
        raise Verdict(Status.rejected, stage, f"timing primitives were replaced: {replaced}",
                      Finding(rule="timer-tampering", message=f"replaced: {replaced}"))
    stream_ms, device_ms = header.get("stream_ms"), header.get("device_ms")
    if not (isinstance(stream_ms, list) and isinstance(device_ms, list)
            and len(stream_ms) == len(device_ms) == repetitions
            and all(isinstance(v, (int, float)) and v >= 0 for v in stream_ms + device_ms)):
        raise _malformed("timing report", stage)
    warmup_calls = header.get("warmup_calls")
    if not isinstance(warmup_calls, int) or not min_warmup <= warmup_calls <= MAX_WARMUP_CALLS:
        raise _malformed("timing report", stage, "implausible warm-up count")
    off_stream = header.get("off_stream_launches")
    if not isinstance(off_stream, int) or off_stream < 0:
        raise _malformed("timing report", stage, "no count of launches off the timed stream")
    if off_stream:
        raise Verdict(Status.rejected, stage,
                      f"{off_stream} Triton launches or stream switches in the timed calls went to another stream "
                      "than the timed one",
                      Finding(rule="side-stream-launch", message="work must stay on the timed stream: "
                              "work on another stream can run before the timed window opens"))
    launches = header.get("launches")
    if not isinstance(launches, int) or launches < repetitions:
        raise Verdict(Status.rejected, stage, f"only {launches} Triton launches in {repetitions} timed calls",
                      Finding(rule="no-triton-launch", message="timed calls launched no Triton kernel"))
    return [Sample(float(s), float(d)) for s, d in zip(stream_ms, device_ms, strict=True)]


def compare_timed_outputs(
    header: dict[str, Any],
    tensors: dict[str, list[torch.Tensor]],
    chosen: list[int],
    reference: ReferenceData,
    settings: CorrectnessSettings,
    trials: list[TrialResult],
    first: int = 0,
) -> None:
    """The outputs of the timed repetitions the judge chose, against the reference on each one's inputs.

    The worker reports the seed it made each repetition's inputs from; the reference output for it
    is computed again here. Each comparison joins `trials` (phase "timed"); a wrong output ends the
    evaluation as incorrect: forward behaved differently when timed than when checked. `chosen` is
    counted within the stretch of timed repetitions that begins at repetition `first`.
    """
    stage = Stage.timing
    expected_groups = {f"repetition_{i}" for i in chosen}
    if header.get("repetitions") != chosen or set(tensors) != expected_groups:
        raise _malformed("timed outputs", stage, "not the outputs of the repetitions the judge chose")
    seeds = header.get("seeds")
    if not (isinstance(seeds, list) and len(seeds) == len(chosen)
            and all(type(seed) is int and 0 <= seed < 2**63 for seed in seeds)):
        raise _malformed("timed outputs", stage, "no input seed for each chosen repetition")
    last_seed, expected = None, []
    for repetition, seed in zip(chosen, seeds, strict=True):
        if seed != last_seed:  # without fresh inputs, one seed serves every repetition
            last_seed, expected = seed, reference.output_for(seed)
        trial = compare_outputs(tensors.pop(f"repetition_{repetition}"), expected, settings, len(trials))
        trial.phase = "timed"
        trials.append(trial)
        if not trial.passed:
            raise Verdict(Status.incorrect, stage,
                          f"repetition {first + repetition} of the timed calls gave a wrong result, though the checked calls "
                          f"were right (does forward behave differently while timed?): {trial.message}")
