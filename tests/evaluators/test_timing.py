"""The pure arithmetic of timing: stream versus device time, the wall-clock cross-check."""

from __future__ import annotations

from evaluators.timing import Sample, effective_times, wall_clock_consistent


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
