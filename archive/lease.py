"""Run leases: one process at a time evolves a run. It claims the run before writing to it and beats a
heartbeat while it works; another process is refused with RunBusy while the holder lives, and takes the
lease over once the holder is gone: at once when it ran on this host and its process has exited, after
`stale_after_s` without a heartbeat from anywhere else.

Each claim is a compare-and-set (an INSERT only one claimant can win on the primary key, or an UPDATE of
the very holder that was read, checked by its row count), so it holds on SQLite and PostgreSQL alike.
Hosts sharing an archive need clocks that agree to well within `stale_after_s`.
"""

from __future__ import annotations

import os
import socket
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import Connection, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from archive.errors import RunBusy
from archive.rows import check_run_exists, now, utc
from archive.schema import run_leases
from evaluators.proctree import pid_namespace

if TYPE_CHECKING:
    from archive.store import Archive

STALE_AFTER_S = 120.0  # a holder silent this long is taken for dead, wherever it ran
_CLAIM_TRIES = 3  # a lost race re-reads the winner, so the second try already says who holds the run


@dataclass(frozen=True)
class Lease:
    """A claim on a run, held until released: what heartbeat() and release() take."""

    run_id: int
    owner: str  # "<pid namespace>:<token>": this claim's own, so two claims from one process are two owners
    host: str
    pid: int


@dataclass(frozen=True)
class Holder:
    """Whoever holds a run's lease, as read from the archive."""

    owner: str
    host: str
    pid: int
    heartbeat_at: datetime

    def silent_s(self, at: datetime) -> float:
        return max(0.0, (at - self.heartbeat_at).total_seconds())

    def gone(self, at: datetime, stale_after_s: float) -> bool:
        if self.silent_s(at) > stale_after_s:
            return True
        # its pid means something here only on this host and in this PID namespace (containers on host
        # networking share the hostname, not their processes)
        here = self.host == socket.gethostname() and self.owner.split(":", 1)[0] == pid_namespace()
        return here and not _process_exists(self.pid)

    def describe(self, at: datetime) -> str:
        return f"process {self.pid} on host {self.host} (last heartbeat {self.silent_s(at):.0f} s ago)"


def claim(archive: Archive, run_id: int, stale_after_s: float = STALE_AFTER_S) -> Lease:
    """Hold run `run_id` for this process, taking the lease over from a holder that is gone."""
    lease = Lease(run_id=run_id, owner=f"{pid_namespace()}:{uuid.uuid4().hex}", host=socket.gethostname(),
                  pid=os.getpid())
    for _ in range(_CLAIM_TRIES):
        with archive._write() as conn:
            check_run_exists(conn, run_id, archive.where)
            at = now()
            holder = _holder(conn, run_id)
            if holder is None:
                if _insert(conn, lease, at):
                    return lease
                continue  # another claimant inserted first: read who it is
            if not holder.gone(at, stale_after_s):
                raise RunBusy(f"run {run_id} is being evolved by {holder.describe(at)}")
            taken = conn.execute(
                update(run_leases)
                .where(run_leases.c.run_id == run_id, run_leases.c.owner == holder.owner)
                .values(owner=lease.owner, host=lease.host, pid=lease.pid, heartbeat_at=at, claimed_at=at)
            ).rowcount
            if taken == 1:
                return lease
    raise RunBusy(f"run {run_id} is being claimed by several processes at once; none of them is this one")


def beat(archive: Archive, lease: Lease) -> None:
    """Refresh the lease's heartbeat; RunBusy when another process has taken the run over meanwhile."""
    with archive._write() as conn:
        at = now()
        beaten = conn.execute(
            update(run_leases)
            .where(run_leases.c.run_id == lease.run_id, run_leases.c.owner == lease.owner)
            .values(heartbeat_at=at)
        ).rowcount
        if beaten == 1:
            return
        holder = _holder(conn, lease.run_id)
    taker = holder.describe(at) if holder is not None else "another process (which has released it since)"
    raise RunBusy(f"run {lease.run_id} was taken over by {taker}: this process went too long without a "
                  "heartbeat")


def release(archive: Archive, lease: Lease) -> None:
    """Give the run up. Only this lease's own claim is removed, never one that took it over."""
    with archive._write() as conn:
        conn.execute(
            delete(run_leases).where(run_leases.c.run_id == lease.run_id, run_leases.c.owner == lease.owner)
        )


def _holder(conn: Connection, run_id: int) -> Holder | None:
    row = conn.execute(select(run_leases).where(run_leases.c.run_id == run_id)).first()
    if row is None:
        return None
    return Holder(owner=row.owner, host=row.host, pid=row.pid, heartbeat_at=utc(row.heartbeat_at))


def _insert(conn: Connection, lease: Lease, at: datetime) -> bool:
    # in a savepoint: on PostgreSQL a failed statement would otherwise abort the whole transaction
    try:
        with conn.begin_nested():
            conn.execute(
                insert(run_leases).values(
                    run_id=lease.run_id, owner=lease.owner, host=lease.host, pid=lease.pid,
                    heartbeat_at=at, claimed_at=at,
                )
            )
    except IntegrityError:
        return False
    return True


def _process_exists(pid: int) -> bool:
    if os.name != "posix" or pid <= 0:
        return True  # no harmless way to ask: wait for its heartbeat to go stale instead
    try:
        os.kill(pid, 0)  # signal 0 is never delivered: it only asks whether the process exists
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process
    return True
