"""Rows to records: turns the tables' rows into the dataclasses the archive hands back, and results
into JSON every database accepts."""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime, timezone
from typing import Any

from pydantic import ValidationError
from sqlalchemy import Connection, Row, select

from archive.errors import ArchiveError
from archive.records import Evaluation, LlmCall, Program, Run, RunStatus
from archive.schema import program_inspirations
from evaluators.protocol import EvalResult, Stage, Status


def result_json(result: EvalResult) -> dict[str, Any]:
    """The full result as JSON. NaN and infinities (a candidate's NaN output gives a NaN error figure)
    become the strings "nan" / "inf" / "-inf", which PostgreSQL's json accepts and pydantic reads back."""
    return _finite_json(result.model_dump(mode="json"))


def finite_or_none(value: float | None) -> float | None:
    """A number for a float column: SQLite turns NaN into NULL anyway, so say so for every database."""
    return value if value is not None and math.isfinite(value) else None


def _finite_json(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)
    if isinstance(value, dict):
        return {key: _finite_json(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_finite_json(item) for item in value]
    return value


def chunks(ids: list[int], size: int = 500) -> list[list[int]]:
    """Id lists cut to a size every database accepts as bound parameters of one IN (...)."""
    return [ids[start : start + size] for start in range(0, len(ids), size)]


def utc(moment: datetime) -> datetime:
    # SQLite keeps no time zone; everything stored is UTC
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=timezone.utc)


def run_record(row: Row) -> Run:
    return Run(
        id=row.id,
        task_name=row.task_name,
        reference_source=row.reference_source,
        reference_hash=row.reference_hash,
        config=row.config,
        status=RunStatus(row.status),
        seed=row.seed,
        created_at=utc(row.created_at),
        updated_at=utc(row.updated_at),
    )


def program_records(conn: Connection, rows: Sequence[Row]) -> dict[int, Program]:
    """Programs keyed by id in the rows' order, with their inspirations."""
    inspirations: dict[int, list[int]] = {row.id: [] for row in rows}
    ids = list(inspirations)
    for chunk in chunks(ids):
        links = conn.execute(
            select(program_inspirations)
            .where(program_inspirations.c.program_id.in_(chunk))
            .order_by(program_inspirations.c.program_id, program_inspirations.c.position)
        )
        for link in links:
            inspirations[link.program_id].append(link.inspiration_id)
    return {
        row.id: Program(
            id=row.id,
            run_id=row.run_id,
            source=row.source,
            normalized_hash=row.normalized_hash,
            parent_id=row.parent_id,
            inspiration_ids=tuple(inspirations[row.id]),
            operator=row.operator,
            model=row.model,
            generation=row.generation,
            island=row.island,
            metadata=row._mapping["metadata"],
            created_at=utc(row.created_at),
            duplicate_of=row.duplicate_of,
        )
        for row in rows
    }


def evaluation_record(row: Row) -> Evaluation:
    try:
        result = EvalResult.model_validate(row.result)
    except ValidationError as exc:
        raise ArchiveError(
            f"evaluation {row.id} holds a result this version cannot read (written by a newer protocol?): {exc}"
        ) from None
    return Evaluation(
        id=row.id,
        program_id=row.program_id,
        status=Status(row.status),
        stage=Stage(row.stage),
        speedup=row.speedup,
        speedup_compile=row.speedup_compile,
        result=result,
        backend=row.backend,
        device=row.device,
        created_at=utc(row.created_at),
    )


def llm_call_record(row: Row) -> LlmCall:
    return LlmCall(
        id=row.id,
        run_id=row.run_id,
        program_id=row.program_id,
        model=row.model,
        prompt=row.prompt,
        response=row.response,
        prompt_tokens=row.prompt_tokens,
        completion_tokens=row.completion_tokens,
        cost=row.cost,
        latency_s=row.latency_s,
        error=row.error,
        created_at=utc(row.created_at),
    )
