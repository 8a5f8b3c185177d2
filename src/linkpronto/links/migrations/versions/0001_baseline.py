"""The 0.1.0 schema, exactly as linkpronto 0.1.0's ``create_all`` made it.

Revision ID: 0001_baseline
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001_baseline"
down_revision: str | None = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "linkpronto_meta",
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("value", sa.String(256), nullable=False),
    )
    op.create_table(
        "consultation_links",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("token_enc", sa.LargeBinary(), nullable=False),
        sa.Column("professional_id", sa.String(200), nullable=False),
        sa.Column("client_id", sa.String(200), nullable=True),
        sa.Column("consultation_type", sa.String(100), nullable=True),
        sa.Column("room", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("max_uses", sa.Integer(), nullable=False),
        sa.Column("uses", sa.Integer(), nullable=False),
        sa.Column("verified_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("sent_base_url", sa.String(300), nullable=True),
        sa.Column("checks_json", sa.Text(), nullable=True),
        sa.Column("device_check_json", sa.Text(), nullable=True),
        sa.Column("failure_json", sa.Text(), nullable=True),
    )
    op.create_index("ix_links_professional", "consultation_links", ["professional_id"])
    op.create_index("ix_links_status", "consultation_links", ["status"])
    op.bulk_insert(
        sa.table("linkpronto_meta", sa.column("key", sa.String), sa.column("value", sa.String)),
        [{"key": "schema_version", "value": "1"}],
    )


def downgrade() -> None:
    op.drop_index("ix_links_status", "consultation_links")
    op.drop_index("ix_links_professional", "consultation_links")
    op.drop_table("consultation_links")
    op.drop_table("linkpronto_meta")
