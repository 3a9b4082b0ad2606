"""Retired flows (``deleted_at``) and the record of imported spec files.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("dp_flows") as batch:
        batch.add_column(sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True))
    op.create_table(
        "dp_file_imports",
        sa.Column("path", sa.String(1024), primary_key=True),
        sa.Column("flow_id", sa.String(64), nullable=False),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.Column("size", sa.Integer, nullable=False),
        sa.Column("mtime_ns", sa.BigInteger, nullable=False),
        sa.Column("version", sa.String(64), nullable=False),
        sa.Column("base_version", sa.String(64), nullable=True),
        sa.Column("conflict_with", sa.String(64), nullable=True),
        sa.Column("missing_since", sa.DateTime(timezone=True), nullable=True),
        sa.Column("imported_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_dp_file_imports_flow_id", "dp_file_imports", ["flow_id"])


def downgrade() -> None:
    op.drop_table("dp_file_imports")
    with op.batch_alter_table("dp_flows") as batch:
        batch.drop_column("deleted_at")
