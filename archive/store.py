"""The Archive: runs, programs, evaluations and LLM calls, each committed the moment it is added.

Every write is its own short transaction, so a crash loses at most the call in flight; reads are
short too, so a report reading the archive never holds up the run writing it. The questions the
search asks of a run's history (best program, lineages, cached results) are in archive/history.py.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Connection, Engine, func, insert, select, update
from sqlalchemy.exc import DBAPIError

from archive import lease
from archive.database import create_archive_engine, display_url, resolve_url
from archive.errors import ArchiveError
from archive.history import RunHistory
from archive.leaderboards import Leaderboards
from archive.lease import STALE_AFTER_S, Lease
from archive.migrate import ensure_schema
from archive.normalize import normalized_hash
from archive.records import Evaluation, LlmCall, Program, Run, RunStatus
from archive.rows import (
    check_run_exists,
    check_same_run,
    checked_json,
    checked_text,
    chunks,
    evaluation_record,
    finite_or_none,
    llm_call_record,
    now,
    program_records,
    record_id,
    result_json,
    run_record,
    sha256,
    storable,
)
from archive.schema import evaluations, llm_calls, program_inspirations, programs, runs
from evaluators.protocol import EvalResult, Status


def open_archive(location: str | os.PathLike[str] | None = None, *, upgrade: bool = True) -> Archive:
    """Open (creating or upgrading as needed) the archive at a path or SQLAlchemy URL.

    None means ./kernelsmith.db. With upgrade=False an older database is refused instead of upgraded.
    """
    url = resolve_url(location)
    engine = create_archive_engine(url)
    where = display_url(url)
    try:
        ensure_schema(engine, where, upgrade=upgrade)
    except DBAPIError as exc:
        engine.dispose()
        raise ArchiveError(f"cannot open the archive at {where}: {exc.orig}") from None
    except BaseException:
        engine.dispose()
        raise
    return Archive(engine, where)


class Archive(RunHistory):
    def __init__(self, engine: Engine, where: str) -> None:
        self._engine = engine
        self.where = where

    def close(self) -> None:
        self._engine.dispose()

    def __enter__(self) -> Archive:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Archive({self.where!r})"

    # runs

    def create_run(
        self, task_name: str, reference_source: str, config: dict[str, Any] | None = None, seed: int = 0
    ) -> Run:
        checked_text("task name", task_name, allow_empty=False)
        checked_text("reference source", reference_source, allow_empty=False)
        config = checked_json("run config", config or {})
        created = now()
        with self._write() as conn:
            run_id = conn.execute(
                insert(runs).values(
                    task_name=task_name,
                    reference_source=reference_source,
                    reference_hash=sha256(reference_source),
                    config=config,
                    status=RunStatus.running.value,
                    seed=seed,
                    created_at=created,
                    updated_at=created,
                )
            ).inserted_primary_key[0]
        return self.get_run(run_id)

    def get_run(self, run: Run | int) -> Run:
        run_id = record_id(run)
        with self._read() as conn:
            row = conn.execute(select(runs).where(runs.c.id == run_id)).first()
        if row is None:
            raise ArchiveError(f"no run {run_id} in the archive at {self.where}")
        return run_record(row)

    def list_runs(self, task_name: str | None = None) -> list[Run]:
        """Runs, newest first; only those of `task_name` when given."""
        query = select(runs).order_by(runs.c.id.desc())
        if task_name is not None:
            query = query.where(runs.c.task_name == task_name)
        with self._read() as conn:
            return [run_record(row) for row in conn.execute(query)]

    def resume(self, run: Run | int) -> Run:
        """Mark a run running again (after a crash or a stop) and return it."""
        return self.set_run_status(run, RunStatus.running)

    def set_run_status(self, run: Run | int, status: RunStatus | str) -> Run:
        status = RunStatus(status)
        run_id = self.get_run(run).id
        with self._write() as conn:
            conn.execute(
                update(runs).where(runs.c.id == run_id).values(status=status.value, updated_at=now())
            )
        return self.get_run(run_id)

    # leases: the one process evolving a run holds it (archive/lease.py)

    def claim_run(self, run: Run | int, stale_after_s: float = STALE_AFTER_S) -> Lease:
        """Hold `run` for this process until release(); RunBusy, naming the holder, while another live
        process holds it. A holder counts as gone once its process has exited (on this host) or it has
        sent no heartbeat for `stale_after_s`."""
        return lease.claim(self, record_id(run), stale_after_s)

    def heartbeat(self, held: Lease) -> None:
        """Tell other processes the holder still lives; RunBusy when the run was taken over meanwhile."""
        lease.beat(self, held)

    def release(self, held: Lease) -> None:
        """Give the run up (only this lease's own claim: never a process that took it over)."""
        lease.release(self, held)

    # programs

    def add_program(
        self,
        run: Run | int,
        source: str,
        parent_id: int | None = None,
        inspiration_ids: Sequence[int] = (),
        operator: str = "seed",
        model: str | None = None,
        generation: int = 0,
        island: int = 0,
        metadata: dict[str, Any] | None = None,
    ) -> Program:
        """Store a candidate. When the run already holds the same normalized source, the new program
        records it in `duplicate_of`: use find_cached_result() to reuse that evaluation."""
        run_id = record_id(run)
        checked_text("program source", source, allow_empty=False)
        if generation < 0 or island < 0:
            raise ArchiveError(
                f"generation and island must be >= 0, got generation={generation}, island={island}"
            )
        metadata = checked_json("program metadata", metadata or {})
        inspiration_ids = [int(i) for i in inspiration_ids]
        digest = normalized_hash(source)
        with self._write() as conn:
            check_run_exists(conn, run_id, self.where)
            check_same_run(conn, run_id, self.where, [parent_id] if parent_id is not None else [], "parent")
            check_same_run(conn, run_id, self.where, inspiration_ids, "inspiration")
            duplicate_of = conn.execute(
                select(func.min(programs.c.id)).where(
                    programs.c.run_id == run_id, programs.c.normalized_hash == digest
                )
            ).scalar()
            program_id = conn.execute(
                insert(programs).values(
                    run_id=run_id,
                    source=source,
                    normalized_hash=digest,
                    parent_id=parent_id,
                    duplicate_of=duplicate_of,
                    operator=operator,
                    model=model,
                    generation=generation,
                    island=island,
                    metadata=metadata,
                    created_at=now(),
                )
            ).inserted_primary_key[0]
            if inspiration_ids:
                conn.execute(
                    insert(program_inspirations),
                    [
                        {"program_id": program_id, "position": position, "inspiration_id": inspiration}
                        for position, inspiration in enumerate(inspiration_ids)
                    ],
                )
            conn.execute(update(runs).where(runs.c.id == run_id).values(updated_at=now()))
        return self.get_program(program_id)

    def get_program(self, program: Program | int) -> Program:
        program_id = record_id(program)
        found = self.get_programs([program_id])
        if not found:
            raise ArchiveError(f"no program {program_id} in the archive at {self.where}")
        return found[0]

    def get_programs(self, program_ids: Iterable[int]) -> list[Program]:
        """The programs with these ids, in the order given (unknown ids are left out)."""
        wanted = [int(i) for i in program_ids]
        by_id: dict[int, Program] = {}
        with self._read() as conn:
            for chunk in chunks(sorted(set(wanted))):
                rows = conn.execute(select(programs).where(programs.c.id.in_(chunk))).all()
                by_id.update(program_records(conn, rows))
        return [by_id[i] for i in wanted if i in by_id]

    def programs(self, run: Run | int) -> list[Program]:
        """Every program of a run, oldest first."""
        with self._read() as conn:
            rows = conn.execute(
                select(programs).where(programs.c.run_id == record_id(run)).order_by(programs.c.id)
            ).all()
            return list(program_records(conn, rows).values())

    # evaluations

    def add_evaluation(
        self, program: Program | int, result: EvalResult, backend: str | None = None
    ) -> Evaluation:
        """Store an evaluation of a program. `backend` defaults to the one the result says ran it."""
        program_id = record_id(program)
        backend = backend or result.environment.backend or "unknown"
        with self._write() as conn:
            row = conn.execute(
                select(runs.c.task_name)
                .select_from(programs.join(runs, programs.c.run_id == runs.c.id))
                .where(programs.c.id == program_id)
            ).first()
            if row is None:
                raise ArchiveError(
                    f"no program {program_id} in the archive at {self.where} to attach a result to"
                )
            if row.task_name != result.task_name:
                raise ArchiveError(
                    f"the result is for task {result.task_name!r} but program {program_id} belongs to a run "
                    f"of task {row.task_name!r}; nothing was stored"
                )
            evaluation_id = conn.execute(
                insert(evaluations).values(
                    program_id=program_id,
                    status=result.status.value,
                    stage=result.stage.value,
                    speedup=finite_or_none(result.speedup),
                    speedup_compile=finite_or_none(result.speedup_compile),
                    result=result_json(result),
                    backend=backend,
                    device=result.environment.device,
                    created_at=now(),
                )
            ).inserted_primary_key[0]
        return self._evaluation_by_id(evaluation_id)

    def evaluations(self, program: Program | int) -> list[Evaluation]:
        """Every evaluation of a program, oldest first."""
        with self._read() as conn:
            rows = conn.execute(
                select(evaluations).where(evaluations.c.program_id == record_id(program)).order_by(evaluations.c.id)
            )
            return [evaluation_record(row) for row in rows]

    def latest_evaluation(
        self, program: Program | int, *, include_infra_errors: bool = False
    ) -> Evaluation | None:
        """The newest evaluation that says something about the candidate (infra_errors skipped by default)."""
        found = [
            e for e in self.evaluations(program) if include_infra_errors or e.status != Status.infra_error
        ]
        return found[-1] if found else None

    # LLM calls

    def add_llm_call(
        self,
        run: Run | int,
        model: str,
        prompt: str,
        response: str,
        program: Program | int | None = None,
        prompt_tokens: int | None = None,
        completion_tokens: int | None = None,
        cost: float | None = None,
        latency_s: float | None = None,
        error: str | None = None,
    ) -> LlmCall:
        run_id = record_id(run)
        with self._write() as conn:
            check_run_exists(conn, run_id, self.where)
            if program is not None:
                check_same_run(conn, run_id, self.where, [record_id(program)], "program")
            call_id = conn.execute(
                insert(llm_calls).values(
                    run_id=run_id,
                    program_id=record_id(program) if program is not None else None,
                    model=model,
                    # PostgreSQL text cannot hold NUL; a model's stray NUL must not lose the call
                    prompt=storable(prompt),
                    response=storable(response),
                    prompt_tokens=prompt_tokens,
                    completion_tokens=completion_tokens,
                    cost=cost,
                    latency_s=latency_s,
                    error=error.replace("\x00", "\ufffd") if error is not None else None,
                    created_at=now(),
                )
            ).inserted_primary_key[0]
            row = conn.execute(select(llm_calls).where(llm_calls.c.id == call_id)).one()
        return llm_call_record(row)

    def link_llm_calls(self, calls: Iterable[LlmCall | int], program: Program | int) -> None:
        """Name the program that stored calls (stored as they finished, without one) made."""
        call_ids, program_id = [record_id(c) for c in calls], record_id(program)
        with self._write() as conn:
            run_id = conn.execute(select(programs.c.run_id).where(programs.c.id == program_id)).scalar()
            if run_id is None:
                raise ArchiveError(f"no program {program_id} in the archive at {self.where}")
            found = conn.execute(
                update(llm_calls).where(llm_calls.c.id.in_(call_ids), llm_calls.c.run_id == run_id)
                .values(program_id=program_id)
            ).rowcount
            if found != len(set(call_ids)):
                raise ArchiveError(f"LLM calls {sorted(call_ids)} are not all calls of program {program_id}'s run "
                                   f"{run_id} in the archive at {self.where}")

    def llm_calls(self, run: Run | int) -> list[LlmCall]:
        with self._read() as conn:
            rows = conn.execute(
                select(llm_calls).where(llm_calls.c.run_id == record_id(run)).order_by(llm_calls.c.id)
            )
            return [llm_call_record(row) for row in rows]

    @property
    def leaderboards(self) -> Leaderboards:
        """Suites searched task by task: archive/leaderboards.py."""
        return Leaderboards(self)

    # plumbing

    @contextmanager
    def _write(self) -> Iterator[Connection]:
        try:
            with self._engine.connect().execution_options(archive_write=True) as conn, conn.begin():
                yield conn
        except DBAPIError as exc:
            raise ArchiveError(f"writing to the archive at {self.where} failed: {exc.orig}") from exc

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        try:
            with self._engine.connect() as conn:
                yield conn
        except DBAPIError as exc:
            raise ArchiveError(f"reading the archive at {self.where} failed: {exc.orig}") from exc

    def _evaluation_by_id(self, evaluation_id: int) -> Evaluation:
        with self._read() as conn:
            return evaluation_record(
                conn.execute(select(evaluations).where(evaluations.c.id == evaluation_id)).one()
            )

