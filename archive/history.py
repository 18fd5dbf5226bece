"""A run's history as the search reads it back: the programs with usable results, cached results,
lineages and the best program. Mixed into Archive, whose connections it reads through."""

from __future__ import annotations

from sqlalchemy import select

from archive import lineage
from archive.fitness import Fitness, rank_key
from archive.normalize import normalized_hash
from archive.records import Evaluation, GenerationStats, Program, Run
from archive.rows import evaluation_record, record_id, sha256
from archive.schema import evaluations, programs, runs
from evaluators.protocol import Status


class RunHistory:
    """Read-only questions about runs; Archive supplies `_read`, `programs` and `get_programs`."""

    def evaluated_programs(self, run: Run | int) -> list[tuple[Program, Evaluation]]:
        """Each program of a run that has a usable evaluation, with its latest one, in the order the
        first usable evaluations arrived: the history the selection policy is rebuilt from."""
        latest = lineage.latest_usable_evaluations(record_id(run)).subquery()
        with self._read() as conn:
            rows = conn.execute(
                select(evaluations)
                .join(latest, evaluations.c.id == latest.c.latest_id)
                .order_by(latest.c.first_id)
            ).all()
        found = [evaluation_record(row) for row in rows]
        by_id = {p.id: p for p in self.programs(run)}
        return [(by_id[evaluation.program_id], evaluation) for evaluation in found]

    def find_cached_result(
        self,
        task_name: str,
        backend: str,
        source: str,
        *,
        reference_source: str | None = None,
        device: str | None = None,
    ) -> Evaluation | None:
        """The newest evaluation of the same normalized source for this task and backend, in any run,
        or None. infra_errors are never returned. Narrow it to runs with the same reference source or to
        one device when those matter (speedups differ between devices)."""
        query = (
            select(evaluations)
            .select_from(evaluations.join(programs, evaluations.c.program_id == programs.c.id).join(runs))
            .where(
                runs.c.task_name == task_name,
                evaluations.c.backend == backend,
                programs.c.normalized_hash == normalized_hash(source),
                evaluations.c.status != Status.infra_error.value,
            )
            .order_by(evaluations.c.id.desc())
            .limit(1)
        )
        if reference_source is not None:
            query = query.where(runs.c.reference_hash == sha256(reference_source))
        if device is not None:
            query = query.where(evaluations.c.device == device)
        with self._read() as conn:
            row = conn.execute(query).first()
        return evaluation_record(row) if row is not None else None

    def ancestors(self, program: Program | int) -> list[Program]:
        """Parent, grandparent, ... up to the seed (nearest first)."""
        with self._read() as conn:
            ids = lineage.ancestor_ids(conn, record_id(program))
        return self.get_programs(ids)

    def descendants(self, program: Program | int) -> list[Program]:
        """Children, grandchildren, ... (oldest first)."""
        with self._read() as conn:
            ids = lineage.descendant_ids(conn, record_id(program))
        return self.get_programs(ids)

    def best(self, run: Run | int) -> tuple[Program, Evaluation] | None:
        """The run's best program by fitness (ties to the oldest), with its latest evaluation."""
        history = self.evaluated_programs(run)
        if not history:
            return None
        return max(
            history,
            key=lambda pair: rank_key(pair[0].id, Fitness(pair[1].status, pair[1].stage, pair[1].speedup)),
        )

    def path_to_best(self, run: Run | int) -> list[Program]:
        """The lineage from the seed to the run's best program, seed first; empty before any evaluation."""
        best = self.best(run)
        if best is None:
            return []
        return [*reversed(self.ancestors(best[0])), best[0]]

    def generation_stats(self, run: Run | int) -> list[GenerationStats]:
        with self._read() as conn:
            return lineage.generation_stats(conn, record_id(run))
