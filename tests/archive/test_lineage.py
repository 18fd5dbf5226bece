"""Lineage queries over a small family tree, on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest

import archive
from archive import GenerationStats
from evaluators.protocol import Stage, Status


@pytest.fixture
def family(db: archive.Archive, make_result):
    """seed -> a -> c -> d, seed -> b -> e; d is the fastest, b failed, e was never evaluated."""
    run = db.create_run("softmax", "class Model: ...")
    seed = db.add_program(run, "seed = 0")
    a = db.add_program(run, "a = 1", parent_id=seed.id, generation=1)
    b = db.add_program(run, "b = 1", parent_id=seed.id, generation=1)
    c = db.add_program(run, "c = 2", parent_id=a.id, inspiration_ids=[b.id], generation=2)
    d = db.add_program(run, "d = 3", parent_id=c.id, generation=3)
    db.add_program(run, "e = 2", parent_id=b.id, generation=2)
    db.add_evaluation(seed, make_result(Status.ok, speedup=1.0))
    db.add_evaluation(a, make_result(Status.ok, speedup=1.5))
    db.add_evaluation(b, make_result(Status.compile_error, stage=Stage.load))
    db.add_evaluation(c, make_result(Status.ok, speedup=1.2))
    db.add_evaluation(c, make_result(Status.infra_error, stage=Stage.queued))  # says nothing about c
    db.add_evaluation(d, make_result(Status.ok, speedup=2.5))
    return run, {p.source.split()[0]: p for p in db.programs(run)}


def _names(programs):
    return [p.source.split()[0] for p in programs]


def test_ancestors_nearest_first_and_descendants_oldest_first(db: archive.Archive, family):
    _, p = family
    assert _names(db.ancestors(p["d"])) == ["c", "a", "seed"]
    assert db.ancestors(p["seed"]) == []
    assert _names(db.descendants(p["a"])) == ["c", "d"]
    assert _names(db.descendants(p["seed"])) == ["a", "b", "c", "d", "e"]
    assert db.descendants(p["d"]) == []


def test_the_path_from_the_seed_to_the_best(db: archive.Archive, family, make_result):
    run, p = family
    assert _names(db.path_to_best(run)) == ["seed", "a", "c", "d"]
    best, evaluation = db.best(run)
    assert best == p["d"] and evaluation.speedup == 2.5

    # a faster result anywhere moves the best; the path follows it
    db.add_evaluation(p["e"], make_result(Status.ok, speedup=3.0))
    assert _names(db.path_to_best(run)) == ["seed", "b", "e"]


def test_the_best_without_timings_is_the_oldest_ok_program(db: archive.Archive, make_result):
    # the CPU interpreter gives no speedup: ok beats every failure, and ties go to the oldest
    run = db.create_run("softmax", "class Model: ...")
    failed = db.add_program(run, "x = 0")
    first_ok = db.add_program(run, "x = 1", parent_id=failed.id, generation=1)
    second_ok = db.add_program(run, "x = 2", parent_id=failed.id, generation=1)
    db.add_evaluation(failed, make_result(Status.incorrect, stage=Stage.correctness))
    db.add_evaluation(second_ok, make_result(Status.ok))
    db.add_evaluation(first_ok, make_result(Status.ok))
    assert db.best(run)[0] == first_ok
    assert db.path_to_best(run) == [failed, first_ok]


def test_nothing_evaluated_means_no_best(db: archive.Archive):
    run = db.create_run("softmax", "class Model: ...")
    db.add_program(run, "x = 0")
    assert db.best(run) is None and db.path_to_best(run) == []


def test_per_generation_statistics(db: archive.Archive, family):
    run, _ = family
    assert db.generation_stats(run) == [
        GenerationStats(
            0, count=1, evaluated=1, ok=1, best_speedup=1.0, mean_speedup=1.0, statuses={"ok": 1}
        ),
        GenerationStats(
            1,
            count=2,
            evaluated=2,
            ok=1,
            best_speedup=1.5,
            mean_speedup=1.5,
            statuses={"ok": 1, "compile_error": 1},
        ),
        GenerationStats(
            2, count=2, evaluated=1, ok=1, best_speedup=1.2, mean_speedup=1.2, statuses={"ok": 1}
        ),
        GenerationStats(
            3, count=1, evaluated=1, ok=1, best_speedup=2.5, mean_speedup=2.5, statuses={"ok": 1}
        ),
    ]


def test_statistics_count_each_program_once_by_its_latest_result(db: archive.Archive, make_result):
    run = db.create_run("softmax", "class Model: ...")
    program = db.add_program(run, "x = 0")
    other = db.add_program(run, "y = 0")
    db.add_evaluation(program, make_result(Status.ok, speedup=1.0))
    db.add_evaluation(program, make_result(Status.ok, speedup=3.0))  # re-measured
    db.add_evaluation(other, make_result(Status.ok, speedup=2.0))
    (stats,) = db.generation_stats(run)
    assert (stats.count, stats.evaluated, stats.ok, stats.best_speedup, stats.mean_speedup) == (
        2,
        2,
        2,
        3.0,
        2.5,
    )
