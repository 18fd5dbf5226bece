"""Lineage queries: ancestors and descendants through parent links (recursive SQL, so a deep lineage is
one query), each program's latest usable evaluation, and per-generation statistics."""

from __future__ import annotations

from sqlalchemy import Connection, Select, case, func, literal, select

from archive.records import GenerationStats
from archive.schema import evaluations, programs
from evaluators.protocol import Status


def ancestor_ids(conn: Connection, program_id: int) -> list[int]:
    """Parent, grandparent, ... (nearest first)."""
    chain = (
        select(programs.c.parent_id.label("id"), literal(1).label("depth"))
        .where(programs.c.id == program_id, programs.c.parent_id.is_not(None))
        .cte("chain", recursive=True)
    )
    chain = chain.union_all(
        select(programs.c.parent_id, chain.c.depth + 1)
        .join(chain, programs.c.id == chain.c.id)
        .where(programs.c.parent_id.is_not(None))
    )
    return list(conn.execute(select(chain.c.id).order_by(chain.c.depth)).scalars())


def descendant_ids(conn: Connection, program_id: int) -> list[int]:
    """Every program whose parent chain reaches `program_id`, oldest first."""
    tree = select(programs.c.id).where(programs.c.parent_id == program_id).cte("tree", recursive=True)
    tree = tree.union_all(select(programs.c.id).join(tree, programs.c.parent_id == tree.c.id))
    return list(conn.execute(select(tree.c.id).distinct().order_by(tree.c.id)).scalars())


def latest_usable_evaluations(run_id: int) -> Select:
    """(program_id, latest_id) per program of the run with a usable evaluation (not infra_error), ordered
    by the program's first usable evaluation: the order the results reached the run."""
    return (
        select(
            evaluations.c.program_id,
            func.max(evaluations.c.id).label("latest_id"),
            func.min(evaluations.c.id).label("first_id"),
        )
        .join(programs, evaluations.c.program_id == programs.c.id)
        .where(programs.c.run_id == run_id, evaluations.c.status != Status.infra_error.value)
        .group_by(evaluations.c.program_id)
        .order_by(func.min(evaluations.c.id))
    )


def generation_stats(conn: Connection, run_id: int) -> list[GenerationStats]:
    """Per generation: programs, how many have a usable result, how many are ok, and the best and mean
    speedup of the ok ones (each program counted once, by its latest usable result)."""
    latest = latest_usable_evaluations(run_id).order_by(None).subquery()
    result = (
        select(programs.c.generation, evaluations.c.status, evaluations.c.speedup)
        .select_from(
            programs.outerjoin(latest, latest.c.program_id == programs.c.id).outerjoin(
                evaluations, evaluations.c.id == latest.c.latest_id
            )
        )
        .where(programs.c.run_id == run_id)
        .subquery()
    )
    ok = result.c.status == Status.ok.value
    totals = conn.execute(
        select(
            result.c.generation,
            func.count(),
            func.count(result.c.status),
            func.sum(case((ok, 1), else_=0)),
            func.max(case((ok, result.c.speedup))),
            func.avg(case((ok, result.c.speedup))),
        )
        .group_by(result.c.generation)
        .order_by(result.c.generation)
    ).all()
    statuses: dict[int, dict[str, int]] = {}
    for generation, status, count in conn.execute(
        select(result.c.generation, result.c.status, func.count())
        .where(result.c.status.is_not(None))
        .group_by(result.c.generation, result.c.status)
    ):
        statuses.setdefault(generation, {})[status] = count
    return [
        GenerationStats(
            generation=generation,
            count=count,
            evaluated=evaluated,
            ok=int(ok_count or 0),
            best_speedup=float(best) if best is not None else None,
            mean_speedup=float(mean) if mean is not None else None,
            statuses=statuses.get(generation, {}),
        )
        for generation, count, evaluated, ok_count, best, mean in totals
    ]
