"""The first schema: runs, programs, program inspirations, evaluations and LLM calls.

Revision ID: 0001
Revises:
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def _timestamp(name: str) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=False)


def upgrade() -> None:
    op.create_table(
        "runs",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("task_name", sa.String(200), nullable=False),
        sa.Column("reference_source", sa.Text, nullable=False),
        sa.Column("reference_hash", sa.String(64), nullable=False),
        sa.Column("config", sa.JSON, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("seed", sa.Integer, nullable=False),
        _timestamp("created_at"),
        _timestamp("updated_at"),
        sa.PrimaryKeyConstraint("id", name="pk_runs"),
    )
    op.create_index("ix_runs_task_name", "runs", ["task_name"])

    op.create_table(
        "programs",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("run_id", sa.Integer, nullable=False),
        sa.Column("source", sa.Text, nullable=False),
        sa.Column("normalized_hash", sa.String(64), nullable=False),
        sa.Column("parent_id", sa.Integer, nullable=True),
        sa.Column("duplicate_of", sa.Integer, nullable=True),
        sa.Column("operator", sa.String(64), nullable=False),
        sa.Column("model", sa.String(200), nullable=True),
        sa.Column("generation", sa.Integer, nullable=False),
        sa.Column("island", sa.Integer, nullable=False),
        sa.Column("metadata", sa.JSON, nullable=False),
        _timestamp("created_at"),
        sa.PrimaryKeyConstraint("id", name="pk_programs"),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"], name="fk_programs_run_id_runs"),
        sa.ForeignKeyConstraint(["parent_id"], ["programs.id"], name="fk_programs_parent_id_programs"),
        sa.ForeignKeyConstraint(["duplicate_of"], ["programs.id"], name="fk_programs_duplicate_of_programs"),
    )
    op.create_index("ix_programs_run_id", "programs", ["run_id"])
    op.create_index("ix_programs_normalized_hash", "programs", ["normalized_hash"])
    op.create_index("ix_programs_parent_id", "programs", ["parent_id"])
    op.create_index("ix_programs_run_generation", "programs", ["run_id", "generation"])

    op.create_table(
        "program_inspirations",
        sa.Column("program_id", sa.Integer, nullable=False),
        sa.Column("position", sa.Integer, nullable=False),
        sa.Column("inspiration_id", sa.Integer, nullable=False),
        sa.PrimaryKeyConstraint("program_id", "position", name="pk_program_inspirations"),
        sa.ForeignKeyConstraint(
            ["program_id"], ["programs.id"], name="fk_program_inspirations_program_id_programs"
        ),
        sa.ForeignKeyConstraint(
            ["inspiration_id"], ["programs.id"], name="fk_program_inspirations_inspiration_id_programs"
        ),
    )
    op.create_index("ix_program_inspirations_inspiration_id", "program_inspirations", ["inspiration_id"])

    op.create_table(
        "evaluations",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("program_id", sa.Integer, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("stage", sa.String(16), nullable=False),
        sa.Column("speedup", sa.Float, nullable=True),
        sa.Column("speedup_compile", sa.Float, nullable=True),
        sa.Column("result", sa.JSON, nullable=False),
        sa.Column("backend", sa.String(32), nullable=False),
        sa.Column("device", sa.String(200), nullable=True),
        _timestamp("created_at"),
        sa.PrimaryKeyConstraint("id", name="pk_evaluations"),
        sa.ForeignKeyConstraint(["program_id"], ["programs.id"], name="fk_evaluations_program_id_programs"),
    )
    op.create_index("ix_evaluations_program_id", "evaluations", ["program_id"])
    op.create_index("ix_evaluations_backend_status", "evaluations", ["backend", "status"])

    op.create_table(
        "llm_calls",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("run_id", sa.Integer, nullable=False),
        sa.Column("program_id", sa.Integer, nullable=True),
        sa.Column("model", sa.String(200), nullable=False),
        sa.Column("prompt", sa.Text, nullable=False),
        sa.Column("response", sa.Text, nullable=False),
        sa.Column("prompt_tokens", sa.Integer, nullable=True),
        sa.Column("completion_tokens", sa.Integer, nullable=True),
        sa.Column("cost", sa.Float, nullable=True),
        sa.Column("latency_s", sa.Float, nullable=True),
        sa.Column("error", sa.Text, nullable=True),
        _timestamp("created_at"),
        sa.PrimaryKeyConstraint("id", name="pk_llm_calls"),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"], name="fk_llm_calls_run_id_runs"),
        sa.ForeignKeyConstraint(["program_id"], ["programs.id"], name="fk_llm_calls_program_id_programs"),
    )
    op.create_index("ix_llm_calls_run_id", "llm_calls", ["run_id"])
    op.create_index("ix_llm_calls_program_id", "llm_calls", ["program_id"])


def downgrade() -> None:
    for table in ("llm_calls", "evaluations", "program_inspirations", "programs", "runs"):
        op.drop_table(table)
