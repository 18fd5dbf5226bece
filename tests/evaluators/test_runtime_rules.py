"""The judge's rules on a worker's timing report: the worker is the candidate's process, so every
field is checked before a figure is believed. The timed path itself needs a GPU; these rules do not."""

from __future__ import annotations

import pytest

from evaluators.runtime_rules import Verdict, timing_samples
from evaluators.timing import MAX_WARMUP_CALLS


def report(**changes):
    header = {"stream_ms": [0.5, 0.4, 0.6], "device_ms": [0.5, 0.45, 0.6], "warmup_calls": 5,
              "off_stream_launches": 0, "launches": 3, "tampered": []}
    header.update(changes)
    return header


def rule_of(header) -> str:
    with pytest.raises(Verdict) as raised:
        timing_samples(header, repetitions=3, min_warmup=5)
    assert raised.value.status.value == "rejected"
    return raised.value.finding.rule


def test_an_honest_report_gives_its_samples():
    samples = timing_samples(report(), repetitions=3, min_warmup=5)
    assert [(s.stream_ms, s.device_ms) for s in samples] == [(0.5, 0.5), (0.4, 0.45), (0.6, 0.6)]


@pytest.mark.parametrize(("changes", "rule"), [
    ({"tampered": ["torch.cuda.Event.elapsed_time"]}, "timer-tampering"),
    ({"stream_ms": [0.5, 0.4]}, "channel-tampering"),  # fewer repetitions than were asked for
    ({"device_ms": [0.5, -1.0, 0.6]}, "channel-tampering"),
    ({"stream_ms": [0.5, "fast", 0.6]}, "channel-tampering"),
    ({"warmup_calls": 4}, "channel-tampering"),  # fewer warm-up calls than asked
    ({"warmup_calls": MAX_WARMUP_CALLS + 1}, "channel-tampering"),
    ({"off_stream_launches": None}, "channel-tampering"),  # a worker that does not say
    ({"off_stream_launches": 2}, "side-stream-launch"),
    ({"launches": 2}, "no-triton-launch"),  # a timed call without a kernel
    ({"launches": "3"}, "no-triton-launch"),
])
def test_a_report_breaking_a_rule_is_rejected_with_it(changes, rule):
    assert rule_of(report(**changes)) == rule
