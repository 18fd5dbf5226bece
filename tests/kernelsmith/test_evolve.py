"""evolve(), the API the leaderboard and benchmarks call: an injected selector, a twice-interrupted
run resumed, runs refused before anything is stored, and a run held by the one process evolving it.
Parameter-only, on the CPU interpreter."""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import time
from pathlib import Path

import pytest

import archive
import kernelsmith.evolve
from archive.policy import Candidate, Mode, Selection
from evaluators.local import LocalEvaluator
from kernelsmith.config import ConfigError, Settings
from kernelsmith.evolve import EvolveError, Interrupt, evolve, policy_selector
from kernelsmith.tasks import CPU_SCALE, load_task

REPO = Path(__file__).resolve().parents[2]
RELU = REPO / "tasks" / "level1" / "1_ReLU.py"


def settings(max_evals: int, **extra) -> Settings:
    return Settings.model_validate({"budgets": {"max_evals": max_evals}, "evaluation": {"trials": 2}, **extra})


def run(coroutine_factory):
    async def go():
        async with LocalEvaluator(devices=[], cpu_workers=2, warm=1) as evaluator:
            return await coroutine_factory(evaluator)

    return asyncio.run(go())


class HoldAfter:
    """The real evaluator, except that requests after the first `count` wait until cancelled: when the
    interrupt comes, those children are surely still in flight, however fast this machine is."""

    def __init__(self, evaluator, count: int) -> None:
        self.evaluator, self.count, self.seen = evaluator, count, 0

    async def evaluate(self, request):
        self.seen += 1
        if self.seen > self.count:
            await asyncio.sleep(3600)
        return await self.evaluator.evaluate(request)

    def __getattr__(self, name):
        return getattr(self.evaluator, name)


class FirstProgramOnly:
    """A selection strategy other than the archive's: every child is made from the run's first program."""

    def __init__(self) -> None:
        self.first: Candidate | None = None
        self.observed: list[int] = []

    @classmethod
    def from_archive(cls, store: archive.Archive, run_record: archive.Run) -> FirstProgramOnly:
        selector = cls()
        for program, evaluation in store.evaluated_programs(run_record):
            selector.observe(program, evaluation)
        return selector

    def select(self) -> Selection | None:
        return Selection(Mode.exploit, self.first, (), 0) if self.first else None

    def observe(self, program, evaluation) -> None:
        self.observed.append(program.id)
        self.first = self.first or Candidate.from_records(program, evaluation)


def test_an_injected_selector_a_second_interrupt_and_a_resume_that_evaluates_what_was_made(tmp_path):
    task = load_task(RELU, scale=CPU_SCALE)
    interrupt = Interrupt()
    selectors: list[FirstProgramOnly] = []

    def selector(store, run_record):
        selectors.append(FirstProgramOnly.from_archive(store, run_record))
        return selectors[-1]

    class InterruptAfterTwo:
        def started(self, stats) -> None: ...

        def update(self, stats) -> None:
            if stats.evaluations >= 2 and interrupt.level == 0:
                interrupt.request()
                interrupt.request()

        def finished(self, summary) -> None: ...

    with archive.open(tmp_path / "a.db") as store:
        first = run(lambda evaluator: evolve(task, settings(4, proposals=4), store, HoldAfter(evaluator, 2),
                                             selector=selector, progress=InterruptAfterTwo(), interrupt=interrupt))
        assert first.status.value == "stopped" and first.stop_reason.value == "interrupted"
        assert "dropped" in first.stop_message
        programs = store.programs(first.run_id)
        pending = [p.id for p in programs if not store.evaluations(p)]
        assert pending  # made before the interrupt, stored unevaluated, for a resumed run
        assert selectors[0].observed == [p.id for p in programs if store.evaluations(p)]  # in commit order
        before = {e.id for p in programs for e in store.evaluations(p)}

        second = run(lambda evaluator: evolve(task, settings(4, proposals=4), store, evaluator, selector=selector,
                                              resume=first.run_id))
        programs = store.programs(first.run_id)

    assert second.run_id == first.run_id and second.status.value == "finished"
    assert second.evaluations == 4 and second.stop_reason.value == "max_evals"  # counted across both sessions
    evaluated_now = [program for _, program in sorted(
        (e.id, p.id) for p in programs for e in store.evaluations(p) if e.id not in before)]
    assert evaluated_now[: len(pending)] == pending  # what was left unevaluated goes first
    assert programs[0].operator == "seed" and all(p.parent_id == 1 for p in programs[1:])
    assert selectors[1].observed[: len(before)] == selectors[0].observed  # rebuilt from the archive
    assert second.correct and not second.measured and second.best_speedup is None
    assert (second.best_program_id, second.lineage) == (1, 1)  # on the CPU every correct kernel ties
    assert second.best_source == task.seed_source and second.task_name == "level1/1_ReLU"


def test_no_seed_and_no_model_is_refused_before_anything_is_stored(tmp_path):
    shutil.copy(RELU, tmp_path / "relu.py")
    task = load_task(tmp_path / "relu.py", scale=CPU_SCALE)  # no seeds/ folder beside it
    with archive.open(tmp_path / "a.db") as store:
        with pytest.raises(EvolveError, match="no seed kernel, and parameter-only evolution") as refused:
            run(lambda evaluator: evolve(task, settings(3), store, evaluator))
        assert "seeds/relu.py" in (refused.value.hint or "")
        assert store.list_runs() == []


def test_resuming_a_run_of_another_task_is_refused(tmp_path):
    softmax = load_task(REPO / "tasks" / "level1" / "13_Softmax.py", scale=CPU_SCALE)
    with archive.open(tmp_path / "a.db") as store:
        other = store.create_run(softmax.label, softmax.source, {"task": {"scale": CPU_SCALE}})
        with pytest.raises(EvolveError, match=r"run 1 is a run of level1/13_Softmax at scale 0.005"):
            run(lambda evaluator: evolve(load_task(RELU, scale=CPU_SCALE), settings(3), store, evaluator,
                                         resume=other.id))
        with pytest.raises(EvolveError, match="no run 7") as missing:
            run(lambda evaluator: evolve(softmax, settings(3), store, evaluator, resume=7))
        assert missing.value.hint == "runs in this archive: 1"


def test_a_bad_selection_policy_is_a_configuration_error_naming_the_key():
    with pytest.raises(ConfigError, match=r"policy: exploit: Input should be greater than or equal to 0; islandz"):
        policy_selector(Settings(policy={"islandz": 3, "exploit": -1}))


def test_a_mutator_that_breaks_ends_the_run_with_its_error_and_keeps_what_was_stored(tmp_path, monkeypatch):
    from kernelsmith.mutators import operators

    def broken(*args, **kwargs):
        raise RuntimeError("the parameter mutator broke")

    monkeypatch.setattr(operators, "tune", broken)
    task = load_task(RELU, scale=CPU_SCALE)
    with archive.open(tmp_path / "runs.db") as store:
        # no wall-time budget: a run that spun on the failure would never end (the test's timeout says so)
        with pytest.raises(RuntimeError, match="the parameter mutator broke"):
            run(lambda evaluator: evolve(task, settings(5), store, evaluator))
        (stored,) = store.list_runs()
        assert [p.operator for p in store.programs(stored.id)] == ["seed"]  # the seed and its result stay
        assert store.evaluations(store.programs(stored.id)[0])


class ClaimsMidRun:
    """A display that, once the run has stored a result, claims the run through another connection to
    the archive, as a second `kernelsmith evolve --resume` would (`stale_after_s`: how long a holder may
    stay silent before that claim takes the run over)."""

    def __init__(self, other: archive.Archive, stale_after_s: float = 120) -> None:
        self.other, self.stale_after_s = other, stale_after_s
        self.outcome: str | None = None
        self.taken: archive.Lease | None = None
        self.programs_then = 0

    def started(self, stats) -> None: ...

    def update(self, stats) -> None:
        if stats.evaluations < 1 or self.outcome is not None:
            return
        try:
            self.taken = self.other.claim_run(stats.run_id, stale_after_s=self.stale_after_s)
            self.outcome = "taken over"
        except archive.RunBusy as busy:
            self.outcome = str(busy)
        self.programs_then = len(self.other.programs(stats.run_id))

    def finished(self, summary) -> None: ...


def test_a_run_is_held_while_it_is_evolved_and_can_be_resumed_once_its_process_is_done(tmp_path):
    task = load_task(RELU, scale=CPU_SCALE)
    with archive.open(tmp_path / "a.db") as store, archive.open(tmp_path / "a.db") as other:
        claimant = ClaimsMidRun(other)
        first = run(lambda evaluator: evolve(task, settings(1), store, evaluator, progress=claimant))
        assert claimant.outcome is not None and claimant.outcome.startswith(
            f"run {first.run_id} is being evolved by process {os.getpid()} on host {socket.gethostname()}")

        other.release(other.claim_run(first.run_id))  # released when evolve() returned
        second = run(lambda evaluator: evolve(task, settings(2), store, evaluator, resume=first.run_id))
    assert second.run_id == first.run_id and second.status.value == "finished" and second.evaluations == 2


def test_a_run_taken_over_mid_search_stops_storing_and_is_left_to_its_new_holder(tmp_path, monkeypatch):
    monkeypatch.setattr(kernelsmith.evolve, "HEARTBEAT_S", 0.1)
    task = load_task(RELU, scale=CPU_SCALE)
    with archive.open(tmp_path / "a.db") as store, archive.open(tmp_path / "a.db") as other:
        # as if this process had stalled past the stale limit: anything silent for a moment is taken over
        claimant = ClaimsMidRun(other, stale_after_s=0.0)
        started = time.monotonic()
        with pytest.raises(EvolveError, match=rf"run 1 was taken over by process {os.getpid()}") as lost:
            # every evaluation after the first waits forever: only losing the run can end this one
            run(lambda evaluator: evolve(task, settings(5, proposals=2), store, HoldAfter(evaluator, 1),
                                         progress=claimant))
        assert time.monotonic() - started < 30
        assert claimant.outcome == "taken over" and "resume it once that process has ended" in lost.value.hint
        assert len(store.programs(1)) == claimant.programs_then  # nothing stored after the takeover
        assert store.get_run(1).status == archive.RunStatus.running  # not marked stopped: not its run now
        other.heartbeat(claimant.taken)  # and its new holder holds it still
