"""A writer killed with SIGKILL in the middle of a run loses nothing it had committed, and the run goes on."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys

import archive
from archive.policy import Policy

WRITER = """
import json, sys
import archive
from evaluators.protocol import EvalResult

db = archive.open(sys.argv[1])
run = db.create_run("softmax", "class Model: ...", seed=3)
parent = None
index = 0
while True:  # until killed
    program = db.add_program(run, f"x = {index}", parent_id=parent, generation=index, island=index % 2)
    verdict = {"task_name": "softmax", "status": "ok", "stage": "done", "speedup": 1 + index / 100}
    evaluation = db.add_evaluation(program, EvalResult.model_validate(verdict))
    db.add_llm_call(run, model="m", prompt="p" * 2000, response="r" * 2000, program=program)
    print(json.dumps([run.id, program.id, evaluation.id]), flush=True)
    parent, index = program.id, index + 1
"""


def test_a_killed_writer_leaves_every_committed_row_readable(archive_url: str):
    writer = subprocess.Popen([sys.executable, "-c", WRITER, archive_url], stdout=subprocess.PIPE, text=True)
    committed = []
    try:
        while len(committed) < 40:
            line = writer.stdout.readline()
            assert line, f"the writer stopped early (exit code {writer.poll()})"
            committed.append(json.loads(line))
    finally:
        writer.send_signal(signal.SIGKILL)  # mid-write: it was inserting as fast as it could
        writer.wait()
    run_id = committed[0][0]
    if "://" not in archive_url:  # a SQLite file: the kill must not have damaged it
        with sqlite3.connect(archive_url) as raw:
            assert raw.execute("PRAGMA integrity_check").fetchone() == ("ok",)

    with archive.open(archive_url) as db:
        run = db.get_run(run_id)
        assert run.status == archive.RunStatus.running  # it never got to say otherwise
        for _, program_id, evaluation_id in committed:
            assert evaluation_id in [e.id for e in db.evaluations(program_id)]
        programs = db.programs(run)
        # at most the one program in flight when the kill came has no evaluation yet
        assert len(programs) - len(db.evaluated_programs(run)) <= 1
        last = committed[-1][1]
        assert [p.id for p in db.ancestors(last)] == [c[1] for c in reversed(committed[:-1])]

        resumed = db.resume(run)
        policy = Policy.from_archive(db, resumed)
        assert len(policy.candidates) >= len(committed)
        child = db.add_program(resumed, "x = 'after the crash'", parent_id=last, generation=len(programs))
        assert db.ancestors(child)[0].id == last
