"""Timing without a GPU: the arithmetic (stream versus device time, the wall-clock cross-check) and the
timed loop on a clock whose primitives are CPU stand-ins."""

from __future__ import annotations

import time

import pytest
import torch

from evaluators.timing import (
    MIN_SPIN_MS,
    SPIN_MS,
    Clock,
    Kept,
    Sample,
    effective_times,
    timed_loop,
    wall_clock_consistent,
)


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
    # five stretches of calls of 5 ms each, beside null loops costing 1 ms per call
    ok, implied = wall_clock_consistent(5.0, [(6.0, 1.0)] * 5)
    assert ok and abs(implied - 5.0) < 1e-9


def test_fabricated_figures_disagree_with_the_wall_clock():
    ok, implied = wall_clock_consistent(0.05, [(6.0, 1.0)] * 5)
    assert not ok and implied > 4


def test_short_kernels_are_not_flagged_by_noise():
    ok, _ = wall_clock_consistent(0.004, [(1.30, 1.29), (1.31, 1.30), (1.29, 1.30)])
    assert ok


def test_a_host_hiccup_in_one_stretch_does_not_reject_an_honest_kernel():
    # as seen on an H200: a 6.5 us kernel, one stretch of 20 calls held up 7 ms by the host
    pairs = [(1.31, 1.30), (1.30, 1.30), (1.66, 1.30), (1.31, 1.31), (1.30, 1.29)]
    ok, implied = wall_clock_consistent(0.0065, pairs)
    assert ok and implied < 0.02
    # whereas work hidden from the events costs time in every stretch
    hidden = [(timed + 0.4, null) for timed, null in pairs]
    assert not wall_clock_consistent(0.0065, hidden)[0]


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

    def next_inputs():
        seed = next(seeds)
        return seed, [torch.full((4,), float(seed))]

    return next_inputs


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


def test_the_chosen_repetitions_keep_their_seeds_and_outputs_copied_after_their_end_events():
    stand_in = StandInClock()
    buffer = torch.zeros(4)  # one output buffer reused by every call, as an address-keyed cache would

    def call(inputs):
        buffer.copy_(inputs[0] * 2)
        return buffer

    def copy(result):
        stand_in.log.append(("copy",))
        return [result.clone()]

    kept = Kept(frozenset({1, 3}), copy)
    timed_loop(call, seeded_inputs(), stand_in.clock, 5, 2, None, True, kept=kept)
    # the first seed made the inputs before the warm-up, two more the warm-up calls': repetition i used 103 + i
    assert kept.seeds == {1: 104, 3: 106}
    assert {i: out[0].tolist() for i, out in kept.outputs.items()} == {1: [208.0] * 4, 3: [212.0] * 4}
    # outside the measured window: each copy after its repetition's last end event, before the next start
    copies = [i for i, entry in enumerate(stand_in.log) if entry == ("copy",)]
    for position in copies:
        assert stand_in.log[position - 1][1] == "end_device"
        assert stand_in.log[position + 1][1] == "start"


def test_without_fresh_inputs_every_repetition_reports_the_one_seed_its_inputs_came_from():
    stand_in = StandInClock()
    kept = Kept(frozenset({0, 4}), lambda result: [result.clone()])
    timed_loop(lambda inputs: inputs[0] + 1, seeded_inputs(7), stand_in.clock, 5, 2, None, False, kept=kept)
    assert kept.seeds == {0: 7, 4: 7}
    assert [out[0].tolist() for out in kept.outputs.values()] == [[8.0] * 4, [8.0] * 4]


def test_the_spin_before_each_timed_call_fits_the_hosts_time_to_issue_it():
    stand_in = StandInClock()
    spins: list[int] = []
    stand_in.clock.spin, stand_in.clock.cycles_per_ms = spins.append, 1_000_000.0
    issue_ms: list[float] = []

    def call(inputs):  # a launch that takes the host about 2 ms to issue
        time.sleep(0.002)

    timed_loop(call, seeded_inputs(), stand_in.clock, 0, 5, None, True, issue_ms=issue_ms)
    assert len(issue_ms) == 5 and all(1.9 <= ms < 50 for ms in issue_ms)
    assert stand_in.clock.spin_ms == SPIN_MS  # until the warm-up's figures are in
    stand_in.clock.fit_spin(issue_ms)
    assert stand_in.clock.spin_ms == SPIN_MS  # a slow host keeps the full spin: it only ever caps at 1 ms
    stand_in.clock.fit_spin([0.02] * 10)  # a launch issued in 20 us
    assert stand_in.clock.spin_ms == pytest.approx(0.11)
    stand_in.clock.fit_spin([0.001] * 10)
    assert stand_in.clock.spin_ms == MIN_SPIN_MS
    timed_loop(lambda inputs: None, seeded_inputs(), stand_in.clock, 3, 0, None, True)
    assert spins == [int(MIN_SPIN_MS * 1_000_000)] * 3  # every timed repetition spins that long
