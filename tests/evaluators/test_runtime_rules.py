"""The judge's rules on a worker's timing report and on the outputs of timed calls: the worker is the
candidate's process, so every field is checked before a figure is believed. The timed path itself needs
a GPU; these rules do not."""

from __future__ import annotations

import pytest
import torch

from evaluators.backends import resolve
from evaluators.protocol import Backend, CorrectnessSettings, Stage, Status
from evaluators.reference import ReferenceStore
from evaluators.runtime_rules import Verdict, compare_timed_outputs, timing_samples
from evaluators.timing import MAX_WARMUP_CALLS
from tests.conftest import make_request


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


# -- outputs of the timed repetitions the judge chose ------------------------------------------

@pytest.fixture(scope="module")
def relu_reference():
    """Reference data as the judge keeps it, on the CPU backend."""
    data, _ = ReferenceStore().get(make_request("relu_reference.py", "relu_ok.py"), resolve(Backend.triton_interpret))
    return data


def relu_of(reference, seed):
    """What an honest forward returns for the inputs made from `seed`."""
    return [torch.relu(reference.task.make_inputs(seed, torch.device("cpu"))[0])]


def timed_answer(outputs_by_repetition, seeds):
    header = {"repetitions": list(outputs_by_repetition), "seeds": seeds}
    return header, {f"repetition_{i}": outputs for i, outputs in outputs_by_repetition.items()}


def test_correct_timed_outputs_pass_and_join_the_trials(relu_reference):
    header, tensors = timed_answer({5: relu_of(relu_reference, 11), 37: relu_of(relu_reference, 12)}, [11, 12])
    trials = []
    compare_timed_outputs(header, tensors, [5, 37], relu_reference, CorrectnessSettings(), trials)
    assert [(t.phase, t.passed) for t in trials] == [("timed", True), ("timed", True)]


def test_without_fresh_inputs_one_seed_checks_every_repetition(relu_reference):
    header, tensors = timed_answer({0: relu_of(relu_reference, 9), 3: relu_of(relu_reference, 9)}, [9, 9])
    trials = []
    compare_timed_outputs(header, tensors, [0, 3], relu_reference, CorrectnessSettings(), trials)
    assert all(t.passed for t in trials) and len(trials) == 2


def test_garbage_returned_only_in_a_timed_call_is_incorrect_and_names_the_repetition(relu_reference):
    half = relu_of(relu_reference, 12)[0].clone()
    half[half.shape[0] // 2:] = 0  # the kernel ran on the first half only
    header, tensors = timed_answer({5: relu_of(relu_reference, 11), 37: [half]}, [11, 12])
    trials = []
    with pytest.raises(Verdict) as raised:
        compare_timed_outputs(header, tensors, [5, 37], relu_reference, CorrectnessSettings(), trials)
    assert (raised.value.status, raised.value.stage) == (Status.incorrect, Stage.timing)
    assert raised.value.message.startswith("repetition 37 of the timed calls gave a wrong result")
    assert [t.passed for t in trials] == [True, False]


def test_outputs_under_the_wrong_seed_are_incorrect(relu_reference):
    header, tensors = timed_answer({5: relu_of(relu_reference, 11)}, [12])
    with pytest.raises(Verdict) as raised:
        compare_timed_outputs(header, tensors, [5], relu_reference, CorrectnessSettings(), [])
    assert raised.value.status == Status.incorrect


@pytest.mark.parametrize("tamper", ["missing repetition", "other repetition", "missing seed", "seed not a number",
                                    "no seeds"])
def test_an_answer_without_the_chosen_repetitions_or_their_seeds_is_rejected(relu_reference, tamper):
    header, tensors = timed_answer({5: relu_of(relu_reference, 11), 37: relu_of(relu_reference, 12)}, [11, 12])
    if tamper == "missing repetition":
        header["repetitions"] = [5]
        del tensors["repetition_37"]
    elif tamper == "other repetition":
        header["repetitions"] = [5, 36]
        tensors["repetition_36"] = tensors.pop("repetition_37")
    elif tamper == "missing seed":
        header["seeds"] = [11]
    elif tamper == "seed not a number":
        header["seeds"] = [11, "12"]
    else:
        del header["seeds"]
    with pytest.raises(Verdict) as raised:
        compare_timed_outputs(header, tensors, [5, 37], relu_reference, CorrectnessSettings(), [])
    assert raised.value.status == Status.rejected and raised.value.finding.rule == "channel-tampering"
