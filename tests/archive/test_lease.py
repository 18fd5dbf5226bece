"""Run leases: while one process evolves a run, another is refused and told who holds it; the run is free
again once the holder releases it, stops beating its heartbeat, or dies on this host."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import create_engine, insert, update

import archive
from archive import RunBusy
from archive.database import resolve_url
from archive.rows import now
from archive.schema import run_leases

HOST = socket.gethostname()
NAMESPACE = os.readlink("/proc/self/ns/pid").removeprefix("pid:")
ROOT = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}  # this checkout's archive, whatever is installed

# a process of its own that claims run 1 and exits without releasing it, as a killed one would
CLAIM_AND_EXIT = "import archive, os, sys; archive.open(sys.argv[1]).claim_run(1); print(os.getpid())"

# says it is ready, claims run 1 when told to go, says whether it won, and lives on until its stdin closes
CLAIM_ON_GO = """
import archive, sys
db = archive.open(sys.argv[1])
print("ready", flush=True)
sys.stdin.readline()
try:
    db.claim_run(1)
    print("won", flush=True)
except archive.RunBusy as busy:
    print(f"busy: {busy}", flush=True)
sys.stdin.read()
"""


def test_a_second_claim_is_refused_naming_the_holder_until_it_is_released(archive_url: str):
    with archive.open(archive_url) as db, archive.open(archive_url) as other:
        run = db.create_run("softmax", "class Model: ...")
        held = db.claim_run(run)
        with pytest.raises(
            RunBusy, match=rf"run {run.id} is being evolved by process {os.getpid()} on host {HOST} "
                           r"\(last heartbeat [01] s ago\)"
        ):
            other.claim_run(run)
        db.release(held)
        taken = other.claim_run(run)
        with pytest.raises(RunBusy, match=f"process {os.getpid()}"):
            db.claim_run(run)  # the same process, but another claim: still refused
        db.release(held)  # a released lease gives up nothing it no longer holds
        with pytest.raises(RunBusy, match=f"run {run.id} was taken over by process {os.getpid()}"):
            db.heartbeat(held)
        other.heartbeat(taken)
        with pytest.raises(archive.ArchiveError, match="no run 7"):
            db.claim_run(7)


def test_a_holder_silent_for_stale_after_s_is_taken_over_and_its_release_frees_nothing(archive_url: str):
    with archive.open(archive_url) as db:
        run = db.create_run("softmax", "class Model: ...")
        first = db.claim_run(run)
        time.sleep(0.6)
        db.heartbeat(first)
        with pytest.raises(RunBusy):
            db.claim_run(run, stale_after_s=0.5)  # it beat just now: alive
        time.sleep(0.6)
        second = db.claim_run(run, stale_after_s=0.5)  # silent for 0.6 s: taken for dead

        with pytest.raises(RunBusy, match=f"run {run.id} was taken over by process {os.getpid()}"):
            db.heartbeat(first)
        db.release(first)
        with pytest.raises(RunBusy):
            db.claim_run(run)  # the first holder's release left the second's claim alone
        db.release(second)
        db.claim_run(run)


def test_a_holder_whose_process_exited_on_this_host_is_taken_over_at_once(archive_url: str, tmp_path):
    with archive.open(archive_url) as db:
        run = db.create_run("softmax", "class Model: ...")
        dead = subprocess.run([sys.executable, "-c", CLAIM_AND_EXIT, archive_url], capture_output=True,
                              text=True, check=True, cwd=tmp_path, env=ENV).stdout.strip()
        _move_holder(archive_url, run.id, "elsewhere")  # there, this host cannot tell whether it exited
        with pytest.raises(RunBusy, match=f"process {dead} on host elsewhere"):
            db.claim_run(run)
        _move_holder(archive_url, run.id, HOST)
        _write(archive_url, update(run_leases).where(run_leases.c.run_id == run.id).values(owner="[1]:another's"))
        with pytest.raises(RunBusy, match=f"process {dead} on host {HOST}"):
            db.claim_run(run)  # same hostname, another PID namespace: its pid says nothing here
        _write(archive_url, update(run_leases).where(run_leases.c.run_id == run.id)
               .values(owner=f"{NAMESPACE}:the dead one's"))
        db.claim_run(run)  # here its pid is gone, so it is taken over without waiting for its heartbeat


@pytest.mark.parametrize("before", ["free", "held by a dead process"])
def test_of_processes_claiming_one_run_at_once_exactly_one_wins(archive_url: str, tmp_path, before: str):
    with archive.open(archive_url) as db:
        run = db.create_run("softmax", "class Model: ...")
    if before != "free":
        dead = subprocess.Popen(["true"])
        dead.wait()
        _write(archive_url, insert(run_leases).values(run_id=run.id, owner=f"{NAMESPACE}:gone", host=HOST,
                                                      pid=dead.pid, heartbeat_at=now(), claimed_at=now()))
    claimants = [subprocess.Popen([sys.executable, "-c", CLAIM_ON_GO, archive_url], stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, text=True, cwd=tmp_path, env=ENV) for _ in range(3)]
    try:
        assert [claimant.stdout.readline().strip() for claimant in claimants] == ["ready"] * len(claimants)
        for claimant in claimants:  # all at once, now that none is still starting
            claimant.stdin.write("go\n")
            claimant.stdin.flush()
        said = [claimant.stdout.readline().strip() for claimant in claimants]
    finally:
        for claimant in claimants:
            claimant.stdin.close()
            claimant.wait(timeout=30)
    winners = [claimant.pid for claimant, line in zip(claimants, said, strict=True) if line == "won"]
    assert len(winners) == 1, said
    refusals = [line for line in said if line != "won"]
    assert all(f"is being evolved by process {winners[0]} on host {HOST}" in line for line in refusals), said


def _move_holder(url: str, run_id: int, host: str) -> None:
    _write(url, update(run_leases).where(run_leases.c.run_id == run_id).values(host=host))


def _write(url: str, statement) -> None:
    """A change behind the archive's back, as another version or a crashed process might have left it."""
    engine = create_engine(resolve_url(url))
    with engine.begin() as conn:
        conn.execute(statement)
    engine.dispose()
