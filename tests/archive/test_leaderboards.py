"""Leaderboards in the archive: which run searched each task of a suite, kept across reopening, and bad
input refused without changing anything."""

from __future__ import annotations

import pytest

import archive
from archive import ArchiveError

TASKS = ["level1/1_ReLU", "level1/3_Sigmoid", "level2/1_Linear_ReLU"]


def test_a_leaderboard_records_each_tasks_run_or_why_it_could_not_start(db: archive.Archive, archive_url: str):
    board = db.leaderboards.create("level1+2", "/suites/kernelsmith", TASKS, {"budget_per_task": 4})
    assert [(e.task_label, e.position, e.run_id, e.error) for e in board.entries] == [
        (label, index, None, None) for index, label in enumerate(TASKS)]
    relu = db.create_run(TASKS[0], "class Model: ...")
    board = db.leaderboards.record(board, TASKS[0], run=relu)
    board = db.leaderboards.record(board, TASKS[2], error="no seed kernel and no model")
    assert board.entry(TASKS[0]).run_id == relu.id and board.entry(TASKS[2]).error == "no seed kernel and no model"

    # a later attempt that starts clears the error; a suite that grew gets its new tasks at the end
    linear = db.create_run(TASKS[2], "class Model: ...")
    board = db.leaderboards.record(board, TASKS[2], run=linear)
    board = db.leaderboards.add_tasks(board, [*TASKS, "level1/4_Tanh"])
    db.close()

    with archive.open(archive_url) as again:
        board = again.leaderboards.get("level1+2")
        assert [(e.task_label, e.run_id, e.error) for e in board.entries] == [
            (TASKS[0], relu.id, None), (TASKS[1], None, None), (TASKS[2], linear.id, None), ("level1/4_Tanh", None, None)]
        assert board.config == {"budget_per_task": 4} and board.suite == "/suites/kernelsmith"
        assert [b.name for b in again.leaderboards.list()] == ["level1+2"]
        assert again.leaderboards.find("other") is None


def test_bad_input_is_refused_and_changes_nothing(db: archive.Archive):
    board = db.leaderboards.create("mine", "/suite", TASKS[:2])
    sigmoid = db.create_run(TASKS[1], "class Model: ...")
    with pytest.raises(ArchiveError, match="already has a leaderboard 'mine'"):
        db.leaderboards.create("mine", "/elsewhere", TASKS)
    with pytest.raises(ArchiveError, match=r"run \d+ searched 'level1/3_Sigmoid', not 'level1/1_ReLU'"):
        db.leaderboards.record(board, TASKS[0], run=sigmoid)
    with pytest.raises(ArchiveError, match="has no task 'level2/1_Linear_ReLU'"):
        db.leaderboards.record(board, TASKS[2], error="x")
    with pytest.raises(ArchiveError, match="no run 999"):
        db.leaderboards.record(board, TASKS[0], run=999)
    with pytest.raises(ArchiveError, match="one of the two"):
        db.leaderboards.record(board, TASKS[0])
    with pytest.raises(ArchiveError, match="repeated: level1/1_ReLU"):
        db.leaderboards.create("twice", "/suite", [TASKS[0], TASKS[0]])
    with pytest.raises(ArchiveError, match="no leaderboard 'nosuch'.*it has: mine"):
        db.leaderboards.get("nosuch")
    assert db.leaderboards.get("mine").entries == board.entries
    assert [b.name for b in db.leaderboards.list()] == ["mine"]
