"""Leaderboards: a suite searched task by task, and which run searched each task.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def _timestamp(name: str) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=False)


def upgrade() -> None:
    op.create_table(
        "leaderboards",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("suite", sa.Text, nullable=False),
        sa.Column("config", sa.JSON, nullable=False),
        _timestamp("created_at"),
        _timestamp("updated_at"),
        sa.PrimaryKeyConstraint("id", name="pk_leaderboards"),
        sa.UniqueConstraint("name", name="uq_leaderboards_name"),
    )
    op.create_table(
        "leaderboard_entries",
        sa.Column("leaderboard_id", sa.Integer, nullable=False),
        sa.Column("task_label", sa.String(200), nullable=False),
        sa.Column("position", sa.Integer, nullable=False),
        sa.Column("run_id", sa.Integer, nullable=True),
        sa.Column("error", sa.Text, nullable=True),
        _timestamp("updated_at"),
        sa.PrimaryKeyConstraint("leaderboard_id", "task_label", name="pk_leaderboard_entries"),
        sa.ForeignKeyConstraint(
            ["leaderboard_id"], ["leaderboards.id"], name="fk_leaderboard_entries_leaderboard_id_leaderboards"
        ),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"], name="fk_leaderboard_entries_run_id_runs"),
    )
    op.create_index("ix_leaderboard_entries_run_id", "leaderboard_entries", ["run_id"])


def downgrade() -> None:
    op.drop_table("leaderboard_entries")
    op.drop_table("leaderboards")
