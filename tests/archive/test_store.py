"""The Archive on a SQLite file and on PostgreSQL: what is stored comes back, bad input is refused
with a message and stores nothing, duplicates are recognised and cached results reused."""

from __future__ import annotations

import math

import pytest

import archive
from archive import ArchiveError, RunStatus
from evaluators.protocol import Stage, Status, TrialResult

REFERENCE = (
    "import torch\nclass Model(torch.nn.Module):\n    def forward(self, x):\n        return x.relu()\n"
)
SEED = '''
import triton
import triton.language as tl


@triton.jit
def relu_kernel(x_ptr, out_ptr, n, BLOCK: tl.constexpr):
    """Elementwise max(x, 0)."""
    offsets = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = offsets < n  # masked tail
    tl.store(out_ptr + offsets, tl.maximum(tl.load(x_ptr + offsets, mask=mask), 0), mask=mask)
'''


def test_a_run_and_its_programs_round_trip(db: archive.Archive):
    run = db.create_run("softmax", REFERENCE, config={"model": "m", "budget": {"evaluations": 10}}, seed=7)
    seed = db.add_program(run, SEED, model=None, metadata={"note": "from the task suite"})
    child = db.add_program(
        run,
        SEED.replace("BLOCK", "BLOCK_SIZE"),
        parent_id=seed.id,
        inspiration_ids=[seed.id],
        operator="diff",
        model="gpt-x",
        generation=1,
        island=2,
        metadata={"tokens": 812},
    )

    assert db.get_run(run.id) == db.list_runs()[0]
    assert run.status == RunStatus.running and run.seed == 7 and run.config["budget"] == {"evaluations": 10}
    assert db.get_program(child.id) == child
    assert (child.parent_id, child.inspiration_ids, child.operator, child.model) == (
        seed.id,
        (seed.id,),
        "diff",
        "gpt-x",
    )
    assert (child.generation, child.island, child.metadata) == (1, 2, {"tokens": 812})
    assert child.created_at.tzinfo is not None and child.created_at >= seed.created_at
    assert [p.id for p in db.programs(run)] == [seed.id, child.id]
    assert db.get_run(run.id).updated_at >= run.updated_at


def test_evaluations_keep_the_full_result(db: archive.Archive, make_result):
    run = db.create_run("softmax", REFERENCE)
    program = db.add_program(run, SEED)
    verdict = make_result(Status.incorrect, message="trial 0: max abs error nan").model_copy(
        update={
            "trials": [TrialResult(index=0, passed=False, max_abs_error=math.nan, max_rel_error=math.inf)]
        }
    )
    failed = db.add_evaluation(program, verdict)
    passed = db.add_evaluation(program, make_result(Status.ok, speedup=1.8), backend="triton-nvidia")

    assert failed.status == Status.incorrect and failed.stage == Stage.correctness
    assert (failed.backend, failed.device) == ("triton-interpret", "cpu")
    assert (
        math.isnan(failed.result.trials[0].max_abs_error)
        and failed.result.trials[0].max_rel_error == math.inf
    )
    assert failed.result.message == "trial 0: max abs error nan"
    assert (passed.speedup, passed.backend) == (1.8, "triton-nvidia")
    assert [e.id for e in db.evaluations(program)] == [failed.id, passed.id]  # NaN != NaN, so by id
    assert db.latest_evaluation(program) == passed


def test_infra_errors_are_kept_but_never_count_as_the_latest_verdict(db: archive.Archive, make_result):
    run = db.create_run("softmax", REFERENCE)
    program = db.add_program(run, SEED)
    ok = db.add_evaluation(program, make_result(Status.ok))
    infra = db.add_evaluation(program, make_result(Status.infra_error, stage=Stage.queued))

    assert db.latest_evaluation(program) == ok
    assert db.latest_evaluation(program, include_infra_errors=True) == infra
    assert db.evaluated_programs(run) == [(program, ok)]


def test_llm_calls_are_recorded_with_their_costs(db: archive.Archive):
    run = db.create_run("softmax", REFERENCE)
    program = db.add_program(run, SEED)
    call = db.add_llm_call(
        run,
        model="gpt-x",
        prompt="make it faster",
        response="```python\n...\x00```",
        program=program,
        prompt_tokens=1200,
        completion_tokens=300,
        cost=0.0042,
        latency_s=3.5,
    )
    failed = db.add_llm_call(run, model="gpt-x", prompt="again", response="", error="rate limited (429)")
    odd = db.add_llm_call(run, model="gpt-x", prompt="once more", response="x = '\ud800'")  # a lone surrogate
    assert odd.response == "x = '\ufffd'"

    assert db.llm_calls(run) == [call, failed, odd]
    assert (call.program_id, call.prompt_tokens, call.completion_tokens, call.cost) == (
        program.id,
        1200,
        300,
        0.0042,
    )
    assert call.response == "```python\n...\ufffd```"  # a stray NUL must not lose the call on PostgreSQL
    assert failed.program_id is None and failed.error == "rate limited (429)"


def test_a_call_stored_as_it_finished_is_linked_to_the_program_it_made_later(db: archive.Archive):
    run = db.create_run("softmax", REFERENCE)
    call = db.add_llm_call(run, model="gpt-x", prompt="write a kernel", response="...", prompt_tokens=10)
    program = db.add_program(run, SEED, operator="first_kernel")
    db.link_llm_calls([call], program)
    assert [(c.id, c.program_id, c.prompt_tokens) for c in db.llm_calls(run)] == [(call.id, program.id, 10)]

    other = db.add_program(db.create_run("relu", REFERENCE), SEED)
    with pytest.raises(archive.ArchiveError, match=f"not all calls of program {other.id}'s run"):
        db.link_llm_calls([call], other)  # a call of one run never becomes another run's
    with pytest.raises(archive.ArchiveError, match="no program 999"):
        db.link_llm_calls([call], 999)
    assert db.llm_calls(run)[0].program_id == program.id


def test_resume_and_status_changes(db: archive.Archive):
    run = db.create_run("softmax", REFERENCE)
    assert db.set_run_status(run, "stopped").status == RunStatus.stopped
    assert db.resume(run.id).status == RunStatus.running
    db.set_run_status(run.id, RunStatus.finished)
    other = db.create_run("matmul", REFERENCE)
    assert [r.id for r in db.list_runs()] == [other.id, run.id]
    assert [r.id for r in db.list_runs(task_name="softmax")] == [run.id]


def test_bad_input_is_refused_with_a_message_and_stores_nothing(db: archive.Archive, make_result):
    run = db.create_run("softmax", REFERENCE)
    other_run = db.create_run("softmax", REFERENCE)
    seed = db.add_program(run, SEED)
    foreign = db.add_program(other_run, SEED)

    with pytest.raises(ArchiveError, match="parent program 999 does not exist"):
        db.add_program(run, SEED, parent_id=999)
    with pytest.raises(ArchiveError, match=f"inspiration program {foreign.id} belongs to run {other_run.id}"):
        db.add_program(run, SEED, parent_id=seed.id, inspiration_ids=[foreign.id])
    with pytest.raises(ArchiveError, match="no run 999"):
        db.add_program(999, SEED)
    with pytest.raises(ArchiveError, match="program source is empty"):
        db.add_program(run, "  \n")
    with pytest.raises(ArchiveError, match="NUL character"):
        db.add_program(run, "x = 1\x00")
    with pytest.raises(ArchiveError, match="not valid Unicode at offset 5"):
        db.add_program(run, "x = '\ud800'")
    with pytest.raises(ArchiveError, match="program metadata cannot be stored as JSON"):
        db.add_program(run, SEED, metadata={"when": object()})
    with pytest.raises(ArchiveError, match="generation and island must be >= 0"):
        db.add_program(run, SEED, generation=-1)
    with pytest.raises(ArchiveError, match="result is for task 'matmul' but program"):
        db.add_evaluation(seed, make_result(task_name="matmul"))
    with pytest.raises(ArchiveError, match="no program 999"):
        db.add_evaluation(999, make_result())
    with pytest.raises(ArchiveError, match="no run 999"):
        db.get_run(999)

    assert db.programs(run) == [seed]
    assert db.evaluations(seed) == []


def test_a_repeated_program_is_marked_as_a_duplicate(db: archive.Archive):
    run = db.create_run("softmax", REFERENCE)
    first = db.add_program(run, SEED)
    reformatted = "# a new comment\n" + SEED.replace(
        "    mask = offsets < n  # masked tail", "    mask = (offsets < n)"
    )
    again = db.add_program(run, reformatted, parent_id=first.id, generation=1)
    different = db.add_program(run, SEED.replace("0)", "1)"), parent_id=first.id, generation=1)
    elsewhere = db.add_program(db.create_run("softmax", REFERENCE), SEED)

    assert first.duplicate_of is None
    assert again.duplicate_of == first.id and again.normalized_hash == first.normalized_hash
    assert different.duplicate_of is None
    assert elsewhere.duplicate_of is None  # duplicates are per run; the result cache spans runs


def test_a_cached_result_is_found_for_the_same_task_backend_and_normalized_source(
    db: archive.Archive, make_result
):
    old_run = db.create_run("softmax", REFERENCE)
    program = db.add_program(old_run, SEED)
    evaluated = db.add_evaluation(
        program, make_result(Status.ok, speedup=1.4, backend="triton-nvidia", device="H100")
    )
    reformatted = SEED.replace('"""Elementwise max(x, 0)."""', "# no docstring here").replace("\n\n", "\n")

    assert db.find_cached_result("softmax", "triton-nvidia", reformatted) == evaluated
    assert db.find_cached_result("softmax", "triton-nvidia", SEED, reference_source=REFERENCE) == evaluated
    assert db.find_cached_result("softmax", "triton-nvidia", SEED, device="H100") == evaluated
    assert db.find_cached_result("softmax", "triton-nvidia", SEED, device="A100") is None
    assert db.find_cached_result("softmax", "triton-nvidia", SEED, reference_source=REFERENCE + "#") is None
    assert db.find_cached_result("softmax", "triton-interpret", SEED) is None
    assert db.find_cached_result("matmul", "triton-nvidia", SEED) is None
    assert db.find_cached_result("softmax", "triton-nvidia", SEED.replace("0)", "1)")) is None


def test_infra_errors_are_never_reused(db: archive.Archive, make_result):
    run = db.create_run("softmax", REFERENCE)
    program = db.add_program(run, SEED)
    db.add_evaluation(program, make_result(Status.infra_error, stage=Stage.queued, backend="triton-nvidia"))
    assert db.find_cached_result("softmax", "triton-nvidia", SEED) is None

    failure = db.add_evaluation(
        program, make_result(Status.compile_error, stage=Stage.load, backend="triton-nvidia")
    )
    db.add_evaluation(program, make_result(Status.infra_error, stage=Stage.queued, backend="triton-nvidia"))
    assert db.find_cached_result("softmax", "triton-nvidia", SEED) == failure


def test_an_in_memory_archive_is_refused_rather_than_written_to_a_file_named_memory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ArchiveError, match="cannot live in memory"):
        archive.open(":memory:")
    assert not (tmp_path / ":memory:").exists()
