"""The judge's timing phase: a warm-up, stretches of timed repetitions each beside a null loop,
outputs of randomly drawn repetitions compared, the wall-clock cross-check and the speed of light."""

from __future__ import annotations

import secrets
import time
from typing import Any

import torch

from evaluators.protocol import EvalRequest, EvalResult, Finding, Stage, Status, TimingStats, TrialResult
from evaluators.reference import ReferenceData
from evaluators.runtime_rules import Verdict, compare_timed_outputs, speed_of_light_verdict, timing_samples
from evaluators.speed_of_light import Peak, lower_bound, measured_copy_bandwidth, table_peak
from evaluators.timing import Sample, effective_times, wall_clock_consistent


class TimingPhase:
    """Part of the judge's evaluation (judge._Evaluation), which provides the state below and the
    channel: `_send`, `_receive`, `_release_memory` and `_profile` (the reference's FLOPs)."""

    judge: Any
    request: EvalRequest
    device: torch.device
    findings: list[Finding]
    trials: list[TrialResult]
    result: EvalResult

    def _time(self, reference: ReferenceData, sync_latency_ms: float) -> None:
        settings = self.request.timing
        command = {"type": "time", "repetitions": settings.repetitions, "warmup": 0, "warmup_ms": 0.0,
                   "flush_l2": settings.flush_l2, "fresh_inputs": settings.fresh_inputs}
        # on our clock: a warm-up (untimed), then stretches of the timed repetitions, each just after
        # the same loop with nothing called (its own cost in this worker: inputs, flush, spin, guards,
        # synchronizes); the wall-clock cross-check compares each pair
        self._send(dict(command, repetitions=0, warmup=settings.warmup, warmup_ms=settings.warmup_ms))
        warmed = self._receive("timing")
        chosen = self._compared_repetitions(reference)
        samples: list[Sample] = []
        pairs: list[tuple[float, float]] = []
        for first, count in _stretches(settings.repetitions):
            started = time.perf_counter()
            self._send(dict(command, repetitions=count, null=True))
            self._receive("timing")
            null_ms = (time.perf_counter() - started) * 1000.0 / count
            compared = [i - first for i in chosen if first <= i < first + count]
            started = time.perf_counter()
            self._send(dict(command, repetitions=count, compare=compared))
            message = self._receive("timing")
            pairs.append(((time.perf_counter() - started) * 1000.0 / count, null_ms))
            message.header["warmup_calls"] = warmed.header.get("warmup_calls")
            samples += timing_samples(message.header, count, settings.warmup)
            if compared:
                outputs = self._receive("timed_outputs")
                compare_timed_outputs(outputs.header, outputs.tensors, compared, reference, self.request.correctness,
                                      self.trials, first)
                del outputs
                self._release_memory()
        times, hidden = effective_times(samples, device_slack_ms=max(4 * sync_latency_ms, 0.03))
        if hidden * 4 >= len(samples):
            self.findings.append(Finding(
                rule="unjoined-stream", severity="warning",
                message=f"{hidden} of {len(samples)} calls left work running on another stream; the whole device time was counted",
            ))
        stats = TimingStats.from_samples(times)
        consistent, implied = wall_clock_consistent(stats.median_ms, pairs)
        if not consistent:
            raise Verdict(Status.rejected, Stage.timing,
                          f"reported {stats.median_ms:.4f} ms per call, but the judge's wall clock implies {implied:.4f} ms",
                          Finding(rule="wall-clock-mismatch", message="event timings disagree with the wall clock"))
        self._check_speed_of_light(stats, reference)
        self.result.timing = stats
        if "eager" in reference.baselines:
            self.result.speedup = reference.baselines["eager"].median_ms / stats.median_ms
        if "compile" in reference.baselines:
            self.result.speedup_compile = reference.baselines["compile"].median_ms / stats.median_ms

    def _compared_repetitions(self, reference: ReferenceData) -> list[int]:
        """Timed repetitions whose outputs are compared too, drawn at random: a candidate that tells timed
        calls from checked ones and returns garbage only when timed cannot know which are looked at."""
        settings = self.request.timing
        count = min(settings.compared_repetitions, settings.repetitions)
        if self.device.type == "cuda" and reference.output_bytes > 0:
            # their copies sit in the worker and then here: fewer (never none) past an eighth of the device
            budget = torch.cuda.get_device_properties(self.device).total_memory // 8
            count = max(1, min(count, budget // reference.output_bytes))
        return sorted(secrets.SystemRandom().sample(range(settings.repetitions), count))

    def _check_speed_of_light(self, stats: TimingStats, reference: ReferenceData) -> None:
        if self.device.type != "cuda":
            return
        if self.judge.peak is None:
            name = torch.cuda.get_device_name(self.device)
            self.judge.peak = table_peak(name) or Peak(measured_copy_bandwidth(self.device), None)
        try:
            l2 = int(torch.cuda.get_device_properties(self.device).L2_cache_size)
        except AttributeError:
            l2 = 0
        bound = lower_bound(self.judge.peak, reference.input_bytes, reference.output_bytes,
                            self._profile(reference).flops, l2)
        speed_of_light_verdict(stats.median_ms, bound)


STRETCHES = 5  # the timed repetitions are run in this many stretches, each beside its own null loop


def _stretches(repetitions: int) -> list[tuple[int, int]]:
    """(first repetition, count) of each stretch: as even as can be, none empty."""
    count = max(1, min(STRETCHES, repetitions))
    bounds = [repetitions * k // count for k in range(count + 1)]
    return [(bounds[k], bounds[k + 1] - bounds[k]) for k in range(count)]
