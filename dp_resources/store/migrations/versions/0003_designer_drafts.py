"""The designer's drafts, node positions per version, and who stored each version.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("dp_flow_versions") as batch:
        batch.add_column(sa.Column("author", sa.String(256), nullable=True))
        # Node positions: kept beside the spec, never part of it, so they do not change the version.
        batch.add_column(sa.Column("layout", sa.JSON, nullable=True))
    op.create_table(
        "dp_flow_drafts",
        # Not a foreign key: a new flow has a draft before it has any version.
        sa.Column("flow_id", sa.String(64), primary_key=True),
        sa.Column("spec", sa.JSON, nullable=False),
        sa.Column("layout", sa.JSON, nullable=True),
        sa.Column("base_version", sa.String(64), nullable=True),
        sa.Column("author", sa.String(256), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("dp_flow_drafts")
    with op.batch_alter_table("dp_flow_versions") as batch:
        batch.drop_column("layout")
        batch.drop_column("author")
