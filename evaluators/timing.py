"""The timed loop, shared by the judge (baselines) and the worker (candidate).

Each repetition: the timed stream made current again, fresh inputs, an L2 flush, a short GPU-side
spin, a start event, the call, an end event on the timed stream and, after a whole-device
synchronize, a second end event. The first end event gives do_bench-like figures; the second
counts work hidden on side streams. The spin keeps the GPU busy while the host enqueues the start
event and launches the call, so the figures are the GPU's time, not the host's launch latency
(do_bench's flush does the same for short launches). The primitives and the timed stream are
captured before any candidate code is imported; the primitives are checked afterwards.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

FLUSH_BYTES = 256 << 20  # four to five times the L2 of current data-centre GPUs, as do_bench uses


@dataclass
class Sample:
    stream_ms: float
    device_ms: float


@dataclass
class Clock:
    """Timing primitives captured from torch and time at a moment no candidate code had run."""

    device: torch.device
    record: Callable[..., Any]
    elapsed: Callable[..., float]
    event_synchronize: Callable[..., Any]
    synchronize: Callable[[], Any]
    current_stream: Callable[[], Any]
    perf_counter: Callable[[], float]
    zero_: Callable[[torch.Tensor], Any]
    events: list[Any] = field(default_factory=list)
    spin: Callable[[int], Any] | None = None  # torch.cuda._sleep: a kernel that waits N cycles
    cycles_per_ms: float = 0.0
    spin_ms: float = field(default_factory=lambda: SPIN_MS)  # before each timed call (fit_spin shortens it)
    # the stream timed work runs on (current at capture), and how to make it current again: a call
    # that leaves another stream current must not take the next repetition's spin and events with it
    stream: Any = None
    restore_stream: Callable[[], Any] | None = None
    _public: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def capture(cls, device: torch.device) -> Clock:
        event_base = torch._C._CudaEventBase
        stream = torch.cuda.current_stream(device)
        clock = cls(
            device=device,
            record=event_base.record,
            elapsed=event_base.elapsed_time,
            event_synchronize=event_base.synchronize,
            synchronize=torch._C._cuda_synchronize,
            current_stream=torch.cuda.current_stream,
            perf_counter=time.perf_counter,
            zero_=torch.Tensor.zero_,
            events=[torch.cuda.Event(enable_timing=True) for _ in range(3)],
            spin=getattr(torch.cuda, "_sleep", None),
            stream=stream,
            restore_stream=_stream_restorer(stream),
        )
        clock.calibrate_spin()
        clock._public = _public_primitives()
        return clock

    def calibrate_spin(self) -> None:
        """Cycles of the spin kernel per millisecond at the clock the GPU runs timed work at.

        The spin counts SM cycles, so its length follows the SM clock. Measured on an idle GPU
        (a worker started ahead of need), the clock is low and the count too small: at full clock
        the spin would then be far shorter than SPIN_MS and stop covering the host's time issuing
        a call. So the GPU is kept busy first, and the fastest of several measurements counts:
        at any lower clock the spin only lasts longer.
        """
        if self.spin is None:
            return
        start, end, _ = self.events
        stream = self.timed_stream()
        self.spin(20_000_000)  # raise the clock (and load the kernel)
        fastest = float("inf")
        for _ in range(5):
            self.record(start, stream)
            self.spin(1_000_000)
            self.record(end, stream)
            self.event_synchronize(end)
            fastest = min(fastest, self.elapsed(start, end))
        self.cycles_per_ms = 1_000_000 / fastest if 0 < fastest < float("inf") else 0.0

    def timed_stream(self) -> Any:
        """The stream timed work runs on, made the current one again if candidate code changed it."""
        if self.restore_stream is not None:
            self.restore_stream()
        return self.stream if self.stream is not None else self.current_stream()

    def fit_spin(self, issue_ms: list[float]) -> None:
        """Shorten the spin to what issuing a call takes on this host, timed in the warm-up, with room:
        three times the 90th percentile plus 50 us, between MIN_SPIN_MS and SPIN_MS.

        Every repetition pays its spin (and so does the null loop beside it): 1 ms each way is a
        fifth of the timing phase for a 10 ms kernel. A call that issues more slowly when timed
        than in the warm-up only adds its own host time to its figures.
        """
        if not issue_ms:
            return
        ordered = sorted(issue_ms)
        slow = ordered[min(len(ordered) - 1, (len(ordered) * 9) // 10)]
        self.spin_ms = min(SPIN_MS, max(MIN_SPIN_MS, 3.0 * slow + 0.05))

    def spin_for(self, ms: float) -> None:
        if self.spin is not None and self.cycles_per_ms > 0 and ms > 0:
            self.spin(int(ms * self.cycles_per_ms))

    def tampered(self) -> list[str]:
        """Names of timing primitives that were replaced since capture."""
        now = _public_primitives()
        return sorted(name for name, value in self._public.items() if now.get(name) is not value)


def _stream_restorer(stream: Any) -> Callable[[], Any] | None:
    """Makes `stream` current through the C function behind torch.cuda.set_stream, its ids read now:
    neither the Python layer nor the stream object is consulted again once candidate code has run."""
    set_stream = getattr(torch._C, "_cuda_setStream", None)
    if set_stream is None:
        return None
    ids = {"stream_id": stream.stream_id, "device_index": stream.device_index, "device_type": stream.device_type}
    return lambda: set_stream(**ids)


def _public_primitives() -> dict[str, Any]:
    import triton.testing

    return {
        "torch.cuda.Event": torch.cuda.Event,
        "torch.cuda.Event.record": torch.cuda.Event.record,
        "torch.cuda.Event.elapsed_time": torch.cuda.Event.elapsed_time,
        "torch.cuda.Event.synchronize": torch.cuda.Event.synchronize,
        "torch.cuda.synchronize": torch.cuda.synchronize,
        "torch.cuda.current_stream": torch.cuda.current_stream,
        "torch._C._cuda_synchronize": torch._C._cuda_synchronize,
        "torch._C._cuda_getCurrentRawStream": getattr(torch._C, "_cuda_getCurrentRawStream", None),
        "torch._C._cuda_setStream": getattr(torch._C, "_cuda_setStream", None),
        "torch._C._CudaEventBase.record": torch._C._CudaEventBase.record,
        "torch._C._CudaEventBase.elapsed_time": torch._C._CudaEventBase.elapsed_time,
        "torch.Tensor.zero_": torch.Tensor.zero_,
        "torch.manual_seed": torch.manual_seed,
        "time.perf_counter": time.perf_counter,
        "time.time": time.time,
        "time.monotonic": time.monotonic,
        "triton.testing.do_bench": triton.testing.do_bench,
    }


def flush_buffer(device: torch.device, enabled: bool) -> torch.Tensor | None:
    if not enabled or device.type != "cuda":
        return None
    try:
        l2 = int(torch.cuda.get_device_properties(device).L2_cache_size)
    except AttributeError:
        l2 = 0
    return torch.empty(max(FLUSH_BYTES, 4 * l2), dtype=torch.uint8, device=device)


MAX_WARMUP_CALLS = 10_000
# a fixed GPU-side wait before each timed call: it covers up to this much host time spent issuing
# the call (Python, launch overhead), and being the same in every loop it cancels out of the
# judge's wall-clock cross-check
SPIN_MS = 1.0
MIN_SPIN_MS = 0.1


@dataclass
class Kept:
    """The repetitions the judge chose to compare, and what the loop keeps of each: the seed of its
    inputs and copies of its outputs, taken after its end events, outside the measured window."""

    chosen: frozenset[int]
    copy: Callable[[Any], list[Any]]  # a call's result -> copies of its output tensors
    seeds: dict[int, int] = field(default_factory=dict)
    outputs: dict[int, list[Any]] = field(default_factory=dict)


def timed_loop(
    call: Callable[[list[Any]], Any],
    next_inputs: Callable[[], tuple[int, list[Any]]],
    clock: Clock,
    repetitions: int,
    warmup: int,
    flush: torch.Tensor | None,
    fresh_inputs: bool,
    warmup_ms: float = 0.0,
    kept: Kept | None = None,
    issue_ms: list[float] | None = None,
) -> tuple[list[Sample], int]:
    """Warm up (at least `warmup` calls and `warmup_ms`), then time `repetitions` calls.

    `next_inputs` gives a seed and the inputs made from it; with `fresh_inputs` off, the first
    ones serve every call. Returns the samples and the number of warm-up calls made: the judge's
    wall-clock cross-check counts them. `issue_ms` collects the host time of each warm-up call up to
    its return, before the GPU finished it (for Clock.fit_spin).
    """
    start, end_stream, end_device = clock.events
    stream = clock.timed_stream()
    seed, inputs = next_inputs()
    began = clock.perf_counter()
    calls = 0
    while calls < MAX_WARMUP_CALLS and (calls < warmup or (clock.perf_counter() - began) * 1000.0 < warmup_ms):
        clock.timed_stream()
        if fresh_inputs:
            seed, inputs = next_inputs()
        if flush is not None:
            clock.zero_(flush)
        issued = clock.perf_counter()
        call(inputs)
        if issue_ms is not None:
            issue_ms.append((clock.perf_counter() - issued) * 1000.0)
        clock.synchronize()  # host time must follow the device for the time-based warm-up
        calls += 1
    samples: list[Sample] = []
    for index in range(repetitions):
        clock.timed_stream()
        if fresh_inputs:
            seed, inputs = next_inputs()
        if flush is not None:
            clock.zero_(flush)
        clock.spin_for(clock.spin_ms)
        clock.record(start, stream)
        result = call(inputs)
        clock.record(end_stream, stream)
        clock.synchronize()  # the whole device: work on side streams is counted below
        clock.record(end_device, stream)
        clock.event_synchronize(end_device)
        samples.append(Sample(clock.elapsed(start, end_stream), clock.elapsed(start, end_device)))
        if kept is not None and index in kept.chosen:
            clock.timed_stream()  # the copies queue on the timed stream, ahead of the next start event
            kept.seeds[index] = seed
            kept.outputs[index] = kept.copy(result)
        del result
    clock.synchronize()
    clock.timed_stream()
    return samples, calls


def effective_times(samples: list[Sample], device_slack_ms: float) -> tuple[list[float], int]:
    """Per-repetition milliseconds, and how many repetitions had work outside the current stream.

    Normally the stream times are used (they match do_bench). When a quarter or more of the
    repetitions finished on the device later than on the stream by more than the host's
    synchronize latency, the candidate leaves work running on another stream: then the device
    times, which count it, are used for every repetition. Deciding per evaluation rather than per
    repetition keeps the host's occasional synchronize jitter out of short kernels' figures.
    """
    hidden = sum(1 for s in samples if s.device_ms - s.stream_ms > device_slack_ms)
    if samples and hidden * 4 >= len(samples):
        return [s.device_ms for s in samples], hidden
    return [s.stream_ms for s in samples], hidden


def calibrate_sync_latency(clock: Clock, repetitions: int = 30) -> float:
    """Median device-minus-stream time of an empty call: the host synchronize latency (ms)."""
    samples, _ = timed_loop(lambda _: None, lambda: (0, []), clock, repetitions, 3, None, False)
    gaps = sorted(s.device_ms - s.stream_ms for s in samples)
    return gaps[len(gaps) // 2]


def wall_clock_consistent(reported_median_ms: float, pairs: list[tuple[float, float]]) -> tuple[bool, float]:
    """Does the judge's wall clock around the timed calls agree with the worker's figures?

    `pairs` holds, for each stretch of timed repetitions, the judge's wall milliseconds per call of
    it and of the null loop run just before it (the same loop with nothing called: inputs, flush,
    spin, synchronizes). Their difference bounds the real time per call from above; event figures
    far under it were not measured honestly. The median over the pairs: a host hiccup (a VM
    descheduled, a pause of the collector) lands in one stretch, while work hidden from the events
    shows in every one. Returns (consistent, implied_ms).
    """
    implied_ms = statistics.median(timed - null for timed, null in pairs)
    # generous: the median sits under the mean, and the null loop's cost is noisy
    consistent = reported_median_ms >= 0.4 * implied_ms - 0.05
    return consistent, implied_ms
