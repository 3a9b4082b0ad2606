"""Roles per workspace and flow, service tokens (hashed), and the audit trail (issue 23).

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "dp_role_grants",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("name", sa.String(256), nullable=False),
        sa.Column("workspace", sa.String(64), nullable=False),
        # "" for the whole workspace: NULL would let two workspace grants of one identity coexist.
        sa.Column("flow_id", sa.String(64), nullable=False, server_default=""),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("granted_by", sa.String(256), nullable=False),
        sa.Column("granted_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("kind", "name", "workspace", "flow_id", name="uq_role_grant"),
    )
    op.create_index("ix_dp_role_grants_workspace", "dp_role_grants", ["workspace"])
    op.create_table(
        "dp_service_tokens",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("label", sa.String(256), nullable=False, server_default=""),
        sa.Column("secret_sha256", sa.String(64), nullable=False),
        sa.Column("created_by", sa.String(256), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_table(
        "dp_audit",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(300), nullable=False),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("workspace", sa.String(64), nullable=False, server_default=""),
        sa.Column("flow_id", sa.String(64), nullable=False, server_default=""),
        sa.Column("detail", sa.JSON, nullable=False),
    )
    op.create_index("ix_dp_audit_at", "dp_audit", ["at"])
    op.create_index("ix_dp_audit_flow_id", "dp_audit", ["flow_id"])


def downgrade() -> None:
    op.drop_table("dp_audit")
    op.drop_table("dp_service_tokens")
    op.drop_table("dp_role_grants")
