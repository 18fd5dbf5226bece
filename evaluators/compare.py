"""Output comparison, run only in the trusted judge.

Dtype-aware elementwise tolerances (KernelBench's current defaults), plus a relative L2 error
bound that a zero, constant or copied-input output cannot meet, and NaN never passes.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from evaluators.protocol import CorrectnessSettings, TrialResult

# KernelBench (src/kernelbench/eval.py, get_tolerance_for_precision): fp32 1e-4, half types 1e-2
DEFAULT_TOLERANCE = {torch.float32: 1e-4, torch.float16: 1e-2, torch.bfloat16: 1e-2, torch.float64: 1e-7}
# ||out - ref|| / ||ref||: an error spread evenly at the elementwise tolerance stays well inside;
# a zero output scores 1.0 and a constant one about the reference's relative spread.
DEFAULT_RELATIVE_L2 = {torch.float32: 1e-3, torch.float16: 2e-2, torch.bfloat16: 3e-2, torch.float64: 1e-6}
CHUNK = 1 << 24  # elements per step: bounded temporaries on a GPU the candidate may have filled


@dataclass
class Tolerance:
    atol: float
    rtol: float
    relative_l2: float


def tolerance_for(dtype: torch.dtype, settings: CorrectnessSettings) -> Tolerance:
    base = DEFAULT_TOLERANCE.get(dtype, 0.0)
    return Tolerance(
        atol=settings.atol if settings.atol is not None else base,
        rtol=settings.rtol if settings.rtol is not None else base,
        relative_l2=settings.max_relative_l2
        if settings.max_relative_l2 is not None
        else DEFAULT_RELATIVE_L2.get(dtype, 0.0),
    )


def compare_outputs(
    candidate: list[torch.Tensor], reference: list[torch.Tensor], settings: CorrectnessSettings, index: int
) -> TrialResult:
    """Compare a candidate's flattened outputs with the reference's; the worst tensor decides."""
    if len(candidate) != len(reference):
        return TrialResult(
            index=index,
            passed=False,
            message=f"forward returned {len(candidate)} tensor(s); the reference returns {len(reference)}",
        )
    result = TrialResult(index=index, passed=True, max_abs_error=0.0, max_rel_error=0.0, relative_l2_error=0.0)
    for position, (out, ref) in enumerate(zip(candidate, reference, strict=True)):
        label = f"output {position}" if len(reference) > 1 else "output"
        if out.shape != ref.shape:
            return _failed(index, f"{label} has shape {tuple(out.shape)}; expected {tuple(ref.shape)}")
        if out.dtype != ref.dtype:
            return _failed(index, f"{label} has dtype {out.dtype}; expected {ref.dtype}")
        verdict = _compare_tensor(out, ref, tolerance_for(ref.dtype, settings), label)
        result.numel += ref.numel()
        result.mismatched += verdict.mismatched
        result.max_abs_error = max(result.max_abs_error or 0.0, verdict.max_abs_error or 0.0)
        result.max_rel_error = max(result.max_rel_error or 0.0, verdict.max_rel_error or 0.0)
        result.relative_l2_error = max(result.relative_l2_error or 0.0, verdict.relative_l2_error or 0.0)
        if not verdict.passed and result.passed:
            result.passed = False
            result.message = verdict.message
    return result


def _failed(index: int, message: str) -> TrialResult:
    return TrialResult(index=index, passed=False, message=message)


def _compare_tensor(out: torch.Tensor, ref: torch.Tensor, tol: Tolerance, label: str) -> TrialResult:
    if not (ref.is_floating_point() or ref.is_complex()):
        mismatched = int((out != ref.to(out.device)).sum().item())
        return TrialResult(
            index=0,
            passed=mismatched == 0,
            mismatched=mismatched,
            numel=ref.numel(),
            max_abs_error=float(mismatched > 0),
            max_rel_error=float(mismatched > 0),
            relative_l2_error=0.0,
            message=f"{label}: {mismatched} of {ref.numel()} elements differ" if mismatched else "",
        )
    out_flat, ref_flat = out.reshape(-1), ref.reshape(-1)
    nan = bad_inf = mismatched = 0
    max_abs = max_rel = 0.0
    diff_sq = ref_sq = 0.0
    for begin in range(0, ref_flat.numel(), CHUNK):
        o = out_flat[begin : begin + CHUNK].double()
        r = ref_flat[begin : begin + CHUNK].to(o.device).double()  # large references may live on the host
        ref_finite = torch.isfinite(r)
        # NaN where the reference is finite never passes; infinities must match exactly
        nan += int((torch.isnan(o) & ~torch.isnan(r)).sum().item())
        bad_inf += int((torch.isinf(r) & (o != r)).sum().item() + (torch.isinf(o) & ref_finite).sum().item())
        both = ref_finite & torch.isfinite(o)
        o, r = o[both], r[both]
        if r.numel() == 0:
            continue
        err = (o - r).abs()
        mismatched += int((err > tol.atol + tol.rtol * r.abs()).sum().item())
        max_abs = max(max_abs, float(err.max().item()))
        max_rel = max(max_rel, float((err / (r.abs() + tol.atol)).max().item()))
        diff_sq += float((err * err).sum().item())
        ref_sq += float((r * r).sum().item())
    relative_l2 = (diff_sq**0.5) / (ref_sq**0.5) if ref_sq > 0 else (0.0 if diff_sq == 0 else float("inf"))
    result = TrialResult(
        index=0,
        passed=True,
        mismatched=mismatched + nan + bad_inf,
        numel=ref.numel(),
        max_abs_error=max_abs,
        max_rel_error=max_rel,
        relative_l2_error=relative_l2,
    )
    if nan:
        result.passed, result.message = False, f"{label}: {nan} NaN value(s) where the reference is finite"
    elif bad_inf:
        result.passed, result.message = False, f"{label}: {bad_inf} infinite value(s) do not match the reference"
    elif mismatched:
        result.passed = False
        result.message = (
            f"{label}: {mismatched} of {ref.numel()} elements outside atol={tol.atol:g}, rtol={tol.rtol:g} "
            f"(max abs error {max_abs:.3g}, max rel error {max_rel:.3g})"
        )
    elif relative_l2 > tol.relative_l2:
        result.passed = False
        result.message = (
            f"{label}: relative L2 error {relative_l2:.3g} exceeds {tol.relative_l2:g} "
            "(elementwise tolerances pass, but the output does not track the reference)"
        )
    return result


def degenerate_reference(outputs_by_trial: list[list[torch.Tensor]]) -> str | None:
    """Warn when the task's check is weak: all-zero, constant or input-independent outputs."""
    first = outputs_by_trial[0]
    for position, tensor in enumerate(first):
        if not tensor.is_floating_point() or tensor.numel() == 0:
            continue
        if tensor.numel() == 1:  # a scalar (a loss) is judged across trials below
            continue
        label = f"output {position}" if len(first) > 1 else "the output"
        if not bool(torch.isfinite(tensor).any()):
            return f"the reference's {label} has no finite value: correctness cannot be checked"
        finite = tensor[torch.isfinite(tensor)]
        if bool((finite == 0).all()):
            return f"the reference's {label} is all zeros: any kernel that writes zeros passes"
        if finite.numel() > 1 and bool((finite == finite.reshape(-1)[0]).all()):
            return f"the reference's {label} is constant: the check cannot tell a real kernel from a constant"
    if len(outputs_by_trial) > 1 and all(
        len(trial) == len(first) and all(torch.equal(a, b) for a, b in zip(trial, first, strict=True))
        for trial in outputs_by_trial[1:]
    ):
        return "the reference's outputs do not depend on the inputs across trials"
    return None
