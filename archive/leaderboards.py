"""Leaderboards in the archive: a named suite of tasks searched under fixed settings, and the run that
searched each task (or why none could start). `db.leaderboards` reaches them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, insert, select, update

from archive.errors import ArchiveError
from archive.rows import check_run_exists, checked_json, checked_text, now, storable, utc
from archive.schema import leaderboard_entries, leaderboards, runs

if TYPE_CHECKING:
    from archive.records import Run
    from archive.store import Archive


@dataclass(frozen=True)
class LeaderboardEntry:
    task_label: str
    position: int  # the task's place in the suite's order
    run_id: int | None  # the run searching it; None until one has started
    error: str | None  # why no run could start, from the latest attempt
    updated_at: datetime


@dataclass(frozen=True)
class Leaderboard:
    id: int
    name: str
    suite: str
    config: dict[str, Any]
    entries: tuple[LeaderboardEntry, ...]  # in suite order
    created_at: datetime
    updated_at: datetime

    def entry(self, task_label: str) -> LeaderboardEntry | None:
        return next((e for e in self.entries if e.task_label == task_label), None)


class Leaderboards:
    """Create, read and record leaderboards; every call is one short transaction, like the archive's."""

    def __init__(self, archive: Archive) -> None:
        self._archive = archive

    def create(
        self, name: str, suite: str, task_labels: Sequence[str], config: dict[str, Any] | None = None
    ) -> Leaderboard:
        checked_text("leaderboard name", name, allow_empty=False)
        if len(name) > 200:
            raise ArchiveError(f"leaderboard name is {len(name)} characters long; at most 200 fit")
        config = checked_json("leaderboard config", config or {})
        labels = _checked_labels(task_labels)
        created = now()
        with self._archive._write() as conn:
            if conn.execute(select(leaderboards.c.id).where(leaderboards.c.name == name)).first():
                raise ArchiveError(f"the archive at {self._archive.where} already has a leaderboard {name!r}")
            leaderboard_id = conn.execute(
                insert(leaderboards).values(
                    name=name, suite=suite, config=config, created_at=created, updated_at=created
                )
            ).inserted_primary_key[0]
            _insert_entries(conn, leaderboard_id, labels, start=0)
        return self.get(name)

    def find(self, name: str) -> Leaderboard | None:
        with self._archive._read() as conn:
            row = conn.execute(select(leaderboards).where(leaderboards.c.name == name)).first()
            return _record(conn, row) if row is not None else None

    def get(self, name: str) -> Leaderboard:
        found = self.find(name)
        if found is None:
            known = [board.name for board in self.list()]
            raise ArchiveError(
                f"no leaderboard {name!r} in the archive at {self._archive.where}"
                + (f" (it has: {', '.join(known)})" if known else " (it has none)")
            )
        return found

    def list(self) -> list[Leaderboard]:
        """Every leaderboard, newest first."""
        with self._archive._read() as conn:
            rows = conn.execute(select(leaderboards).order_by(leaderboards.c.id.desc())).all()
            return [_record(conn, row) for row in rows]

    def add_tasks(self, leaderboard: Leaderboard, task_labels: Sequence[str]) -> Leaderboard:
        """Append the tasks it does not have yet (a suite that grew since the leaderboard was made)."""
        labels = [label for label in _checked_labels(task_labels) if leaderboard.entry(label) is None]
        if labels:
            with self._archive._write() as conn:
                _insert_entries(conn, leaderboard.id, labels, start=len(leaderboard.entries))
                _touch(conn, leaderboard.id)
        return self.get(leaderboard.name)

    def record(
        self, leaderboard: Leaderboard, task_label: str, *, run: Run | int | None = None, error: str | None = None
    ) -> Leaderboard:
        """Say which run searches a task (clearing an earlier error), or why none could start."""
        if (run is None) == (error is None):
            raise ArchiveError("record a task's run or its error, one of the two")
        if leaderboard.entry(task_label) is None:
            raise ArchiveError(f"leaderboard {leaderboard.name!r} has no task {task_label!r}")
        run_id = None if run is None else int(run if isinstance(run, int) else run.id)
        with self._archive._write() as conn:
            if run_id is not None:
                check_run_exists(conn, run_id, self._archive.where)
                task_name = conn.execute(select(runs.c.task_name).where(runs.c.id == run_id)).scalar()
                if task_name != task_label:
                    raise ArchiveError(f"run {run_id} searched {task_name!r}, not {task_label!r}")
            conn.execute(
                update(leaderboard_entries)
                .where(
                    leaderboard_entries.c.leaderboard_id == leaderboard.id,
                    leaderboard_entries.c.task_label == task_label,
                )
                .values(
                    run_id=run_id if run_id is not None else leaderboard_entries.c.run_id,
                    error=storable(error) if error is not None else None,
                    updated_at=now(),
                )
            )
            _touch(conn, leaderboard.id)
        return self.get(leaderboard.name)


def _checked_labels(task_labels: Sequence[str]) -> list[str]:
    labels = list(task_labels)
    for label in labels:
        checked_text("task label", label, allow_empty=False)
    repeated = sorted({label for label in labels if labels.count(label) > 1})
    if repeated:
        raise ArchiveError(f"a leaderboard lists each task once; repeated: {', '.join(repeated)}")
    return labels


def _insert_entries(conn: Connection, leaderboard_id: int, labels: list[str], start: int) -> None:
    if labels:
        stamp = now()
        conn.execute(
            insert(leaderboard_entries),
            [
                {"leaderboard_id": leaderboard_id, "task_label": label, "position": start + index,
                 "run_id": None, "error": None, "updated_at": stamp}
                for index, label in enumerate(labels)
            ],
        )


def _touch(conn: Connection, leaderboard_id: int) -> None:
    conn.execute(update(leaderboards).where(leaderboards.c.id == leaderboard_id).values(updated_at=now()))


def _record(conn: Connection, row: Any) -> Leaderboard:
    entries = conn.execute(
        select(leaderboard_entries)
        .where(leaderboard_entries.c.leaderboard_id == row.id)
        .order_by(leaderboard_entries.c.position)
    ).all()
    return Leaderboard(
        id=row.id,
        name=row.name,
        suite=row.suite,
        config=row.config,
        entries=tuple(
            LeaderboardEntry(e.task_label, e.position, e.run_id, e.error, utc(e.updated_at)) for e in entries
        ),
        created_at=utc(row.created_at),
        updated_at=utc(row.updated_at),
    )
