"""Between records and rows: input checked before it is stored, results turned into JSON every database
accepts, and the tables' rows turned into the dataclasses the archive hands back."""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Sequence
from datetime import datetime, timezone
from typing import Any

from pydantic import ValidationError
from sqlalchemy import Connection, Row, select

from archive.errors import ArchiveError
from archive.records import Evaluation, LlmCall, Program, Run, RunStatus
from archive.schema import program_inspirations, programs, runs
from evaluators.protocol import EvalResult, Stage, Status


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def checked_text(what: str, text: str, *, allow_empty: bool) -> None:
    if not isinstance(text, str):
        raise ArchiveError(f"{what} must be a string, got {type(text).__name__}")
    if not allow_empty and not text.strip():
        raise ArchiveError(f"{what} is empty")
    if "\x00" in text:
        raise ArchiveError(
            f"{what} contains a NUL character (offset {text.index(chr(0))}); it cannot be Python source"
        )
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as error:
        raise ArchiveError(f"{what} is not valid Unicode at offset {error.start} (a lone surrogate)") from None


_SURROGATES = re.compile("[\ud800-\udfff]")


def storable(text: str) -> str:
    """Free text (a prompt, a reply, an error) as the database can hold it: NULs and lone
    surrogates become U+FFFD instead of failing the insert."""
    return _SURROGATES.sub("\ufffd", text.replace("\x00", "\ufffd"))


def checked_json(what: str, value: dict[str, Any]) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ArchiveError(f"{what} must be a dict, got {type(value).__name__}")
    try:
        # allow_nan=False: PostgreSQL's json type refuses NaN and Infinity
        return json.loads(json.dumps(value, allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise ArchiveError(f"{what} cannot be stored as JSON: {exc}") from None


def now() -> datetime:
    return datetime.now(timezone.utc)


def check_run_exists(conn: Connection, run_id: int, where: str) -> None:
    if conn.execute(select(runs.c.id).where(runs.c.id == run_id)).first() is None:
        raise ArchiveError(f"no run {run_id} in the archive at {where}")


def check_same_run(conn: Connection, run_id: int, where: str, program_ids: list[int], role: str) -> None:
    """Parents, inspirations and LLM calls link programs of one run only."""
    if not program_ids:
        return
    found = dict(
        conn.execute(select(programs.c.id, programs.c.run_id).where(programs.c.id.in_(program_ids))).all()
    )
    for program_id in program_ids:
        if program_id not in found:
            raise ArchiveError(f"{role} program {program_id} does not exist in the archive at {where}")
        if found[program_id] != run_id:
            raise ArchiveError(
                f"{role} program {program_id} belongs to run {found[program_id]}, not run {run_id}"
            )


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


def record_id(thing: Any) -> int:
    """The id of a record, or the id itself: the archive's methods take either."""
    return int(thing if isinstance(thing, int) else thing.id)
