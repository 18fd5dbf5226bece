"""The protocol models: JSON round trips, versions, digests, statistics."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from evaluators.protocol import (
    PROTOCOL_VERSION,
    EvalRequest,
    EvalResult,
    Finding,
    Stage,
    Status,
    TimingStats,
    TrialResult,
)


def request(**kwargs) -> EvalRequest:
    return EvalRequest(task_name="t", reference_source="ref", candidate_source="cand", **kwargs)


def test_request_and_result_round_trip_through_json():
    original = request(strict=True)
    assert EvalRequest.model_validate_json(original.model_dump_json()) == original
    result = EvalResult(
        task_name="t", status=Status.ok, stage=Stage.done, speedup=1.5,
        trials=[TrialResult(index=0, passed=True, max_abs_error=0.0)],
        timing=TimingStats.from_samples([1.0, 2.0, 3.0]),
        findings=[Finding(rule="r", message="m", line=3, severity="warning")],
    )
    again = EvalResult.model_validate_json(result.model_dump_json())
    assert again == result and again.status is Status.ok


def test_unknown_fields_and_other_versions_are_refused():
    with pytest.raises(ValidationError, match="extra"):
        EvalRequest.model_validate({"task_name": "t", "reference_source": "r", "candidate_source": "c", "x": 1})
    with pytest.raises(ValidationError, match="not supported"):
        request(protocol_version="0")
    assert request().protocol_version == PROTOCOL_VERSION


def test_a_seed_torch_cannot_take_is_refused_in_the_request():
    with pytest.raises(ValidationError, match="less than 9223372036854775808"):
        EvalRequest.model_validate({"task_name": "t", "reference_source": "r", "candidate_source": "c",
                                    "correctness": {"seed": 2**70}})


@pytest.mark.parametrize("compared", [0, -1, 17])
def test_a_request_cannot_turn_off_the_comparison_of_timed_outputs_nor_ask_for_too_many(compared):
    with pytest.raises(ValidationError, match="compared_repetitions"):
        EvalRequest.model_validate({"task_name": "t", "reference_source": "r", "candidate_source": "c",
                                    "timing": {"compared_repetitions": compared}})


def test_digest_identifies_identical_requests():
    assert request().digest() == request().digest()
    assert request().digest() != request(strict=True).digest()


def test_timing_stats_quantiles():
    stats = TimingStats.from_samples([float(v) for v in range(1, 101)])
    assert stats.median_ms == pytest.approx(50.5)
    assert stats.p10_ms == pytest.approx(10.9)
    assert stats.p90_ms == pytest.approx(90.1)
    assert stats.spread == pytest.approx((90.1 - 10.9) / 50.5)
    assert stats.samples == 100
    with pytest.raises(ValueError):
        TimingStats.from_samples([])
