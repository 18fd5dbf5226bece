"""Timing without a GPU: the arithmetic (stream versus device time, the wall-clock cross-check) and the
timed loop on a clock whose primitives are CPU stand-ins."""

from __future__ import annotations

import time

import torch

from evaluators.timing import Clock, Sample, effective_times, timed_loop, wall_clock_consistent


def test_stream_time_is_used_when_nothing_runs_outside_the_stream():
    times, hidden = effective_times([Sample(1.0, 1.01), Sample(2.0, 2.005)], device_slack_ms=0.02)
    assert times == [1.0, 2.0] and hidden == 0


def test_work_left_on_another_stream_is_counted():
    samples = [Sample(0.1, 5.0), Sample(0.1, 5.0), Sample(0.1, 5.1), Sample(1.0, 1.01)]
    times, hidden = effective_times(samples, device_slack_ms=0.02)
    assert times == [5.0, 5.0, 5.1, 1.01] and hidden == 3


def test_occasional_synchronize_jitter_does_not_distort_short_kernels():
    samples = [Sample(0.012, 0.02)] * 9 + [Sample(0.012, 0.08)]
    times, hidden = effective_times(samples, device_slack_ms=0.03)
    assert times == [0.012] * 10 and hidden == 1


def test_honest_figures_agree_with_the_wall_clock():
    # 110 calls of 5 ms each plus 1 ms of loop overhead per call took 0.66 s
    ok, implied = wall_clock_consistent(5.0, 0.66, 110, 1.0)
    assert ok and abs(implied - 5.0) < 1e-9


def test_fabricated_figures_disagree_with_the_wall_clock():
    ok, implied = wall_clock_consistent(0.05, 0.66, 110, 1.0)
    assert not ok and implied > 4


def test_short_kernels_are_not_flagged_by_noise():
    ok, _ = wall_clock_consistent(0.004, 0.033, 110, 0.29)
    assert ok


# -- the timed loop, on a clock of CPU stand-ins -----------------------------------------------

class StandInClock:
    """Records what the loop asks of the GPU: which stream each event went to, what ran when."""

    def __init__(self) -> None:
        self.current = "timed"
        self.log: list[tuple[str, ...]] = []
        self.clock = Clock(
            device=torch.device("cpu"),
            record=lambda event, stream: self.log.append(("record", event, stream)),
            elapsed=lambda start, end: 1.0,
            event_synchronize=lambda event: None,
            synchronize=lambda: None,
            current_stream=lambda: self.current,
            perf_counter=time.perf_counter,
            zero_=lambda flush: None,
            events=["start", "end_stream", "end_device"],
            stream="timed",
            restore_stream=self.restore,
        )

    def restore(self) -> None:
        self.current = "timed"


def seeded_inputs(first: int = 100):
    seeds = iter(range(first, first + 1000))
    return lambda: [torch.full((4,), float(next(seeds)))]


def test_a_call_that_leaves_another_stream_current_does_not_move_the_next_repetitions_events():
    stand_in = StandInClock()
    streams_seen = []

    def call(inputs):
        streams_seen.append(stand_in.current)
        stand_in.current = "side"  # what `torch.cuda.set_stream(side)` left behind would do

    samples, calls = timed_loop(call, seeded_inputs(), stand_in.clock, 5, 2, None, True)
    assert len(samples) == 5 and calls == 2
    assert streams_seen == ["timed"] * 7  # every call, warm-up included, starts on the timed stream
    assert {entry[2] for entry in stand_in.log} == {"timed"}  # and every event is recorded there
    assert stand_in.current == "timed"  # the worker goes on on it, too

