"""Each worker of a root evaluator gets a user of its own: never one a live worker has, never one a
survivor still runs as, and never with an earlier worker's files left in the shared temp dirs."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from evaluators import worker_users
from evaluators.backends import resolve
from evaluators.judge import Judge
from evaluators.proctree import kill_tree
from evaluators.protocol import Backend, Status
from evaluators.sandbox import Limits, ProcessSandbox
from tests.conftest import make_request

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="workers get users of their own only under root")
REPO = str(Path(__file__).resolve().parents[2])


@pytest.fixture
def two_uids(monkeypatch):
    """A range of two uids of this test's own, away from the ones other tests' workers take."""
    first = worker_users.FIRST_UID + worker_users.UID_COUNT + 1000 + os.getpid() % 1000 * 2
    monkeypatch.setattr(worker_users, "FIRST_UID", first)
    monkeypatch.setattr(worker_users, "UID_COUNT", 2)
    return first


def test_two_live_workers_never_share_a_user(two_uids):
    a, b = worker_users.claim(), worker_users.claim()
    try:
        assert a.own and b.own and {a.uid, b.uid} == {two_uids, two_uids + 1}
        with pytest.raises(RuntimeError, match="in use"):
            worker_users.claim()  # both held: no third worker shares either
    finally:
        a.release()
        b.release()
    again = worker_users.claim()  # released ones are handed out again
    again.release()
    assert again.uid in (two_uids, two_uids + 1)


def test_a_uid_that_something_still_runs_as_is_skipped(two_uids):
    survivor = subprocess.Popen([sys.executable, "-m", "evaluators.jail", "--uid", str(two_uids), "--", "sleep", "60"],
                                cwd=REPO, start_new_session=True)
    try:
        deadline = time.monotonic() + 10
        while not worker_users.processes_of(two_uids) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert worker_users.processes_of(two_uids)
        user = worker_users.claim()
        try:
            assert user.uid == two_uids + 1
            with pytest.raises(RuntimeError):
                worker_users.claim()
        finally:
            user.release()
    finally:
        kill_tree(survivor.pid)
        survivor.wait(timeout=10)


def test_what_an_earlier_worker_left_in_the_temp_dir_is_gone_before_its_uid_is_reused(two_uids):
    left = [Path(tempfile.mkdtemp(prefix="left-by-worker-")), Path(tempfile.mkstemp(prefix="left-by-worker-")[1])]
    (left[0] / "inside").write_text("a secret of the last candidate")
    for path in left:
        os.chown(path, two_uids, two_uids)
    mine = Path(tempfile.mkstemp(prefix="not-the-workers-")[1])
    try:
        users = [worker_users.claim(), worker_users.claim()]
        assert not any(path.exists() for path in left)
        assert mine.exists()  # only what the uid owned
        for user in users:
            user.release()
    finally:
        mine.unlink()


def test_a_lock_directory_that_root_does_not_own_alone_is_never_trusted(tmp_path, monkeypatch):
    squatted = tmp_path / "kernelsmith-worker-uids"
    squatted.mkdir()
    os.chown(squatted, worker_users.NOBODY, worker_users.NOBODY)  # made by a worker, say
    assert worker_users.lock_directory(parents=(str(tmp_path),)) is None
    open_to_all = tmp_path / "other"
    (open_to_all / "kernelsmith-worker-uids").mkdir(parents=True, mode=0o777)
    os.chmod(open_to_all / "kernelsmith-worker-uids", 0o777)
    assert worker_users.lock_directory(parents=(str(open_to_all),)) is None
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    assert worker_users.lock_directory(parents=(str(fresh),)) == fresh / "kernelsmith-worker-uids"


def _uid_of(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        return int(next(line for line in f if line.startswith("Uid:")).split()[1])


def test_two_workers_at_once_run_as_users_of_their_own():
    spec = resolve(Backend.triton_interpret)
    if not ProcessSandbox()._can_drop_privileges(spec):
        pytest.skip("no unprivileged user can run this Python (a root-only interpreter)")
    sandbox = ProcessSandbox()
    first, second = sandbox.start(spec, Limits()), sandbox.start(spec, Limits())
    try:
        uids = {_uid_of(first.pid), _uid_of(second.pid)}
        assert len(uids) == 2 and not uids & {0, worker_users.NOBODY}
        assert {first.workdir.stat().st_uid, second.workdir.stat().st_uid} == uids  # each owns only its own
        assert all(handle.privileges_dropped for handle in (first, second))
    finally:
        first.close()
        second.close()
    assert not any(worker_users.processes_of(uid) for uid in uids)


def test_a_judge_with_a_private_umask_still_lets_its_worker_read_the_candidate():
    # a service started with UMask=0077 writes the task's files 0600: they must be the worker's own user's
    spec = resolve(Backend.triton_interpret)
    if not ProcessSandbox()._can_drop_privileges(spec):
        pytest.skip("no unprivileged user can run this Python (a root-only interpreter)")
    before = os.umask(0o077)
    try:
        result = Judge(spec).evaluate(make_request("relu_reference.py", "relu_ok.py"))
    finally:
        os.umask(before)
    assert result.status == Status.ok, result.message


def test_with_every_worker_uid_taken_a_start_fails_clearly_and_never_runs_as_root(two_uids):
    spec = resolve(Backend.triton_interpret)
    held = [worker_users.claim(), worker_users.claim()]
    try:
        result = Judge(spec, sandbox=ProcessSandbox(drop_privileges=True)).evaluate(
            make_request("relu_reference.py", "relu_ok.py"))
        assert result.status == Status.infra_error  # the host's fault, retried elsewhere
        assert "worker uids" in result.message and "in use" in result.message
    finally:
        for user in held:
            user.release()
