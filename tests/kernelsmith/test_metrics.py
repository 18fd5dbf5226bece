"""fast_p, correctness and mean speedups against values worked out by hand."""

from __future__ import annotations

import math

import pytest

from kernelsmith.metrics import TaskOutcome, fast_p, level_metrics, suite_metrics

# Five tasks, two levels. C has no correct kernel (its fastest, incorrect, program ran at 3x: that must
# not count). B sits exactly at 1.5x and E exactly at 1x over eager and 2x over torch.compile: ties.
A = TaskOutcome("level1/a", 1, correct=True, speedup=2.5, speedup_compile=1.2)
B = TaskOutcome("level1/b", 1, correct=True, speedup=1.5, speedup_compile=0.8)
C = TaskOutcome("level1/c", 1, correct=False, speedup=3.0, speedup_compile=3.0)
D = TaskOutcome("level2/d", 2, correct=True, speedup=0.5, speedup_compile=None)
E = TaskOutcome("level2/e", 2, correct=True, speedup=1.0, speedup_compile=2.0)
SUITE = [A, B, C, D, E]


def test_fast_p_counts_every_task_in_the_denominator_and_only_strictly_faster_correct_ones_above():
    assert fast_p(SUITE, 0) == pytest.approx(4 / 5)  # A B D E correct
    assert fast_p(SUITE, 1) == pytest.approx(2 / 5)  # A, B; E at exactly 1x is not faster
    assert fast_p(SUITE, 1.5) == pytest.approx(1 / 5)  # A; B at exactly 1.5x is not
    assert fast_p(SUITE, 2) == pytest.approx(1 / 5)  # A
    assert fast_p(SUITE, 3) == 0.0  # C's 3x is incorrect


def test_fast_p_over_torch_compile_uses_the_compile_speedups():
    assert fast_p(SUITE, 0, "compile") == pytest.approx(4 / 5)  # correctness does not depend on the baseline
    assert fast_p(SUITE, 1, "compile") == pytest.approx(2 / 5)  # A 1.2, E 2.0; B 0.8 slower, D not timed
    assert fast_p(SUITE, 1.5, "compile") == pytest.approx(1 / 5)  # E
    assert fast_p(SUITE, 2, "compile") == 0.0  # E at exactly 2x


def test_means_are_over_correct_timed_tasks_only():
    metrics = suite_metrics(SUITE)
    assert (metrics.tasks, metrics.correct, metrics.timed) == (5, 4, 4)
    assert metrics.geomean_speedup == pytest.approx((2.5 * 1.5 * 0.5 * 1.0) ** 0.25)  # 1.875 ** 0.25
    assert metrics.geomean_speedup == pytest.approx(1.170174, abs=1e-6)
    assert metrics.mean_speedup == pytest.approx(5.5 / 4)
    assert metrics.correctness == pytest.approx(0.8)

    compile_metrics = suite_metrics(SUITE, baseline="compile")
    assert compile_metrics.timed == 3  # D's kernel is correct but torch.compile was not timed for it
    assert compile_metrics.geomean_speedup == pytest.approx((1.2 * 0.8 * 2.0) ** (1 / 3))
    assert compile_metrics.mean_speedup == pytest.approx(4.0 / 3)


def test_per_level_rows_then_all():
    rows = level_metrics(SUITE)
    assert [row.scope for row in rows] == ["level 1", "level 2", "all"]
    level1, level2, total = rows
    assert level1.fast == pytest.approx({0.0: 2 / 3, 1.0: 2 / 3, 1.5: 1 / 3, 2.0: 1 / 3})
    assert level1.geomean_speedup == pytest.approx(math.sqrt(2.5 * 1.5))
    assert level1.mean_speedup == pytest.approx(2.0)
    assert level2.fast == pytest.approx({0.0: 1.0, 1.0: 0.0, 1.5: 0.0, 2.0: 0.0})
    assert level2.geomean_speedup == pytest.approx(math.sqrt(0.5))
    assert total == suite_metrics(SUITE)


def test_a_suite_with_no_correct_kernel():
    failed = [TaskOutcome("a", 1, correct=False), TaskOutcome("b", 1, correct=False, speedup=4.0)]
    metrics = suite_metrics(failed)
    assert metrics.fast == {0.0: 0.0, 1.0: 0.0, 1.5: 0.0, 2.0: 0.0}
    assert (metrics.correct, metrics.timed) == (0, 0)
    assert metrics.geomean_speedup is None and metrics.mean_speedup is None


def test_unmeasured_speed_reports_correctness_only():
    # the CPU interpreter: correct kernels, no timing
    cpu = [TaskOutcome("a", 1, correct=True), TaskOutcome("b", 1, correct=False), TaskOutcome("c", None, True)]
    metrics = suite_metrics(cpu, measured=False)
    assert metrics.fast == {0.0: pytest.approx(2 / 3), 1.0: None, 1.5: None, 2.0: None}
    assert metrics.geomean_speedup is None and metrics.timed == 0
    assert [row.scope for row in level_metrics(cpu, measured=False)] == ["level 1", "other", "all"]


def test_a_correct_kernel_without_a_speedup_counts_as_correct_but_not_faster():
    outcomes = [TaskOutcome("a", 1, correct=True, speedup=None), TaskOutcome("b", 1, correct=True, speedup=1.2)]
    assert fast_p(outcomes, 0) == 1.0
    assert fast_p(outcomes, 1) == 0.5
    assert suite_metrics(outcomes).timed == 1


def test_edge_cases():
    assert fast_p([], 1) is None
    assert suite_metrics([]).fast[0.0] is None
    with pytest.raises(ValueError, match="p >= 0"):
        fast_p(SUITE, -1)
    with pytest.raises(ValueError, match="unknown baseline"):
        fast_p(SUITE, 1, "inductor")
    # a NaN or zero speedup is no speedup at all
    odd = [TaskOutcome("a", 1, True, speedup=float("nan")), TaskOutcome("b", 1, True, speedup=0.0)]
    assert suite_metrics(odd).timed == 0 and fast_p(odd, 1) == 0.0
