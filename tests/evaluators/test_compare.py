"""Output comparison: what passes and what never can."""

from __future__ import annotations

import torch

from evaluators.compare import compare_outputs, degenerate_reference
from evaluators.protocol import CorrectnessSettings

SETTINGS = CorrectnessSettings()


def softmax_like(rows: int = 8, cols: int = 65536) -> torch.Tensor:
    return torch.softmax(torch.rand(rows, cols, generator=torch.Generator().manual_seed(0)), dim=1)


def test_exact_output_passes_with_zero_error():
    ref = torch.randn(100)
    trial = compare_outputs([ref.clone()], [ref], SETTINGS, 0)
    assert trial.passed and trial.max_abs_error == 0 and trial.relative_l2_error == 0


def test_rounding_error_within_tolerance_passes():
    ref = torch.randn(1000, dtype=torch.float64).float()
    out = ref * (1 + 1e-6)
    assert compare_outputs([out], [ref], SETTINGS, 0).passed


def test_zeros_cannot_pass_even_when_every_element_is_within_atol():
    # softmax over 64k columns of uniform inputs: every value is far under atol=1e-4, so allclose alone would pass zeros
    ref = softmax_like()
    zeros = torch.zeros_like(ref)
    assert torch.allclose(zeros, ref, atol=1e-4, rtol=1e-4)
    trial = compare_outputs([zeros], [ref], SETTINGS, 0)
    assert not trial.passed
    assert "relative L2 error 1" in trial.message


def test_constant_output_cannot_pass():
    ref = softmax_like()
    constant = torch.full_like(ref, 1.0 / ref.shape[1])
    assert not compare_outputs([constant], [ref], SETTINGS, 0).passed


def test_returning_the_input_fails():
    x = torch.randn(64, 64)
    assert not compare_outputs([x], [torch.relu(x)], SETTINGS, 0).passed


def test_nan_never_passes_and_infinities_must_match():
    ref = torch.tensor([1.0, float("inf"), -2.0])
    nan_out = torch.tensor([float("nan"), float("inf"), -2.0])
    assert "NaN" in compare_outputs([nan_out], [ref], SETTINGS, 0).message
    wrong_inf = torch.tensor([1.0, float("-inf"), -2.0])
    assert "infinite" in compare_outputs([wrong_inf], [ref], SETTINGS, 0).message
    assert compare_outputs([ref.clone()], [ref], SETTINGS, 0).passed


def test_structure_shape_and_dtype_must_match():
    ref = torch.randn(4, 4)
    assert "returned 2 tensor(s)" in compare_outputs([ref, ref], [ref], SETTINGS, 0).message
    assert "shape (16,)" in compare_outputs([ref.reshape(16)], [ref], SETTINGS, 0).message
    assert "dtype torch.float64" in compare_outputs([ref.double()], [ref], SETTINGS, 0).message


def test_half_precision_gets_looser_default_tolerance():
    ref = torch.randn(1000).half()
    out = (ref.float() * 1.004).half()
    assert compare_outputs([out], [ref], SETTINGS, 0).passed
    assert not compare_outputs([out.float()], [ref.float()], SETTINGS, 0).passed


def test_tolerances_can_be_overridden_per_request():
    ref = torch.randn(1000)
    out = ref + 5e-3
    assert not compare_outputs([out], [ref], SETTINGS, 0).passed
    loose = CorrectnessSettings(atol=1e-2, rtol=1e-2, max_relative_l2=1e-1)
    assert compare_outputs([out], [ref], loose, 0).passed


def test_integer_outputs_compare_exactly():
    ref = torch.arange(10)
    assert compare_outputs([ref.clone()], [ref], SETTINGS, 0).passed
    off = ref.clone()
    off[3] += 1
    trial = compare_outputs([off], [ref], SETTINGS, 0)
    assert not trial.passed and trial.mismatched == 1


def test_degenerate_references_are_named():
    assert "all zeros" in degenerate_reference([[torch.zeros(10)]])
    assert "constant" in degenerate_reference([[torch.full((10,), 3.0)]])
    same = torch.randn(10)
    assert "do not depend on the inputs" in degenerate_reference([[same], [same.clone()]])
    assert degenerate_reference([[torch.randn(10)], [torch.randn(10)]]) is None
