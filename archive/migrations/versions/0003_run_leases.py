"""Run leases: the one process evolving a run holds its row, so a second one is refused.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def _timestamp(name: str) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=False)


def upgrade() -> None:
    op.create_table(
        "run_leases",
        sa.Column("run_id", sa.Integer, nullable=False),
        sa.Column("owner", sa.String(64), nullable=False),
        sa.Column("host", sa.Text, nullable=False),
        sa.Column("pid", sa.Integer, nullable=False),
        _timestamp("heartbeat_at"),
        _timestamp("claimed_at"),
        sa.PrimaryKeyConstraint("run_id", name="pk_run_leases"),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"], name="fk_run_leases_run_id_runs"),
    )


def downgrade() -> None:
    op.drop_table("run_leases")
