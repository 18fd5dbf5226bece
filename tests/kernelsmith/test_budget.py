"""Budgets: what counts as spent, when a run must stop, and when one more child may start."""

from __future__ import annotations

from archive.fitness import Fitness
from evaluators.protocol import Stage, Status
from kernelsmith.budget import INFRA_ERRORS_IN_A_ROW, RunStats, StopReason, room_for_another, spent
from kernelsmith.config import Budgets

OK = Fitness(Status.ok, Stage.done, None)  # correct, not timed (the CPU interpreter)


def fast(speedup: float) -> Fitness:
    return Fitness(Status.ok, Stage.done, speedup)


def failed(stage: Stage = Stage.correctness) -> Fitness:
    return Fitness(Status.incorrect, stage, None)


def stats(**kwargs) -> RunStats:
    return RunStats(run_id=1, task_name="t", backend="triton-nvidia", measured=True, max_evals=10, **kwargs)


def test_the_best_is_the_archives_fitness_order_and_ties_go_to_the_oldest():
    run = stats()
    run.add_result(1, failed(Stage.load), reused=False)
    run.add_result(2, failed(Stage.correctness), reused=False)  # got further: better
    assert run.best_program_id == 2 and not run.best_correct and run.best_speedup is None
    run.add_result(3, OK, reused=False)
    run.add_result(4, OK, reused=False)  # as good, but younger
    assert run.best_program_id == 3 and run.best_correct and run.best_speedup is None
    run.add_result(5, fast(1.4), reused=False)
    run.add_result(6, fast(1.2), reused=False)
    assert (run.best_program_id, run.best_speedup) == (5, 1.4)
    assert run.evaluations == 6 and run.statuses == {"incorrect": 2, "ok": 4}


def test_reused_results_cost_no_evaluation_and_count_as_idle():
    run = stats()
    run.add_result(1, fast(1.1), reused=False)
    run.add_result(2, fast(1.1), reused=True)
    run.add_failed_mutation()
    assert (run.evaluations, run.reused, run.failed_mutations, run.idle) == (1, 1, 1, 2)
    run.add_result(3, fast(1.0), reused=False)
    assert run.idle == 0 and run.since_improvement == 1


def test_infra_errors_are_never_the_best_and_stop_a_run_when_they_keep_coming():
    run = stats()
    run.add_result(1, fast(1.0), reused=False)
    for program in range(2, 2 + INFRA_ERRORS_IN_A_ROW):
        assert spent(Budgets(max_evals=None), run) is None
        run.add_result(program, Fitness(Status.infra_error, Stage.queued, None), reused=False)
    assert run.best_program_id == 1
    assert spent(Budgets(max_evals=None), run) == StopReason.evaluator_failed


def test_each_budget_stops_the_run_when_spent():
    run = stats(uses_llm=True)
    assert spent(Budgets(), run) is None
    run.add_llm_call(1000, 500, 0.02, failed=False)
    assert spent(Budgets(max_llm_calls=1), run) == StopReason.max_llm_calls
    assert spent(Budgets(max_tokens=1500), run) == StopReason.max_tokens
    assert spent(Budgets(max_tokens=1501), run) is None
    assert spent(Budgets(max_cost=0.02), run) == StopReason.max_cost
    run.add_result(1, fast(2.5), reused=False)
    assert spent(Budgets(target_speedup=2.5), run) == StopReason.target_speedup
    assert spent(Budgets(target_speedup=3.0), run) is None
    for program in range(2, 5):
        run.add_result(program, fast(1.0), reused=False)
    assert spent(Budgets(stagnation=3), run) == StopReason.stagnation
    assert spent(Budgets(max_evals=4), run) == StopReason.max_evals
    run.started -= 10
    assert spent(Budgets(wall_time_s=5), run) == StopReason.wall_time


def test_llm_budgets_do_not_apply_to_a_run_without_a_model():
    run = stats(uses_llm=False)
    assert spent(Budgets(max_llm_calls=0, max_tokens=0, max_cost=0), run) is None


def test_children_in_flight_count_against_the_evaluation_and_call_budgets():
    run = stats(uses_llm=True)
    run.add_result(1, OK, reused=False)
    budgets = Budgets(max_evals=3, max_llm_calls=10)
    assert room_for_another(budgets, run, in_flight=1)
    assert not room_for_another(budgets, run, in_flight=2)  # 1 done + 2 in flight may reach 3
    run.llm_calls = 8
    assert not room_for_another(Budgets(max_evals=None, max_llm_calls=10), run, in_flight=2)
    assert room_for_another(Budgets(max_evals=None, max_llm_calls=10), run, in_flight=1)
