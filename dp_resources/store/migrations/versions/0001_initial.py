"""Workspaces, flows and flow versions.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "dp_workspaces",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "dp_flows",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("workspace", sa.String(64), sa.ForeignKey("dp_workspaces.name"), nullable=False),
        sa.Column("published_version", sa.String(64), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_dp_flows_workspace", "dp_flows", ["workspace"])
    op.create_table(
        "dp_flow_versions",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("flow_id", sa.String(64), sa.ForeignKey("dp_flows.id"), nullable=False),
        sa.Column("version", sa.String(64), nullable=False),
        sa.Column("spec", sa.JSON, nullable=False),
        sa.Column("message", sa.Text, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("flow_id", "version", name="uq_flow_version"),
    )
    op.create_index("ix_dp_flow_versions_flow_id", "dp_flow_versions", ["flow_id"])


def downgrade() -> None:
    op.drop_table("dp_flow_versions")
    op.drop_table("dp_flows")
    op.drop_table("dp_workspaces")
