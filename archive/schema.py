"""The archive's tables (SQLAlchemy Core): runs, programs and their inspirations, evaluations, LLM calls,
leaderboards, and the lease of the process evolving each run.

Changing a table here needs a new Alembic revision in archive/migrations/versions (see docs/archive.md).
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)

# Named constraints let Alembic alter them later on SQLite (batch mode) and PostgreSQL alike.
metadata = MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

runs = Table(
    "runs",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("task_name", String(200), nullable=False, index=True),
    Column("reference_source", Text, nullable=False),
    Column("reference_hash", String(64), nullable=False),
    Column("config", JSON, nullable=False),
    Column("status", String(16), nullable=False),
    Column("seed", Integer, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

programs = Table(
    "programs",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("run_id", ForeignKey("runs.id"), nullable=False, index=True),
    Column("source", Text, nullable=False),
    Column("normalized_hash", String(64), nullable=False, index=True),
    Column("parent_id", ForeignKey("programs.id"), nullable=True, index=True),
    # the first program of the same run with the same normalized source, when this one repeats it
    Column("duplicate_of", ForeignKey("programs.id"), nullable=True),
    Column("operator", String(64), nullable=False),
    Column("model", String(200), nullable=True),
    Column("generation", Integer, nullable=False),
    Column("island", Integer, nullable=False),
    Column("metadata", JSON, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)
Index("ix_programs_run_generation", programs.c.run_id, programs.c.generation)

program_inspirations = Table(
    "program_inspirations",
    metadata,
    Column("program_id", ForeignKey("programs.id"), primary_key=True),
    Column("position", Integer, primary_key=True),
    Column("inspiration_id", ForeignKey("programs.id"), nullable=False, index=True),
)

evaluations = Table(
    "evaluations",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("program_id", ForeignKey("programs.id"), nullable=False, index=True),
    Column("status", String(16), nullable=False),
    Column("stage", String(16), nullable=False),
    Column("speedup", Float, nullable=True),
    Column("speedup_compile", Float, nullable=True),
    Column("result", JSON, nullable=False),
    Column("backend", String(32), nullable=False),
    Column("device", String(200), nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
)
Index("ix_evaluations_backend_status", evaluations.c.backend, evaluations.c.status)

llm_calls = Table(
    "llm_calls",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("run_id", ForeignKey("runs.id"), nullable=False, index=True),
    Column("program_id", ForeignKey("programs.id"), nullable=True, index=True),
    Column("model", String(200), nullable=False),
    Column("prompt", Text, nullable=False),
    Column("response", Text, nullable=False),
    Column("prompt_tokens", Integer, nullable=True),
    Column("completion_tokens", Integer, nullable=True),
    Column("cost", Float, nullable=True),
    Column("latency_s", Float, nullable=True),
    Column("error", Text, nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

# A leaderboard: one search per task of a suite, under settings fixed when it was created. Its entries
# say which run searched each task (or why none could start), so a rerun skips the finished tasks.
leaderboards = Table(
    "leaderboards",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(200), nullable=False, unique=True),
    Column("suite", Text, nullable=False),
    Column("config", JSON, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

leaderboard_entries = Table(
    "leaderboard_entries",
    metadata,
    Column("leaderboard_id", ForeignKey("leaderboards.id"), primary_key=True),
    Column("task_label", String(200), primary_key=True),
    Column("position", Integer, nullable=False),
    Column("run_id", ForeignKey("runs.id"), nullable=True, index=True),
    Column("error", Text, nullable=True),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

# The process evolving a run, when one is: it claims the row before it writes to the run and refreshes
# heartbeat_at while it works, so a second process is refused (archive/lease.py says when it may take over).
run_leases = Table(
    "run_leases",
    metadata,
    Column("run_id", ForeignKey("runs.id"), primary_key=True),
    Column("owner", String(64), nullable=False),  # a token of the claim, not of the process
    Column("host", Text, nullable=False),
    Column("pid", Integer, nullable=False),
    Column("heartbeat_at", DateTime(timezone=True), nullable=False),
    Column("claimed_at", DateTime(timezone=True), nullable=False),
)
