"""0.3.1: revocations in the store, shared by every instance and surviving restarts.

- ``link_revocations``: one row per revoked link — its ``room`` and ``until``, the moment LiveKit
  itself stops accepting the join tokens issued before the revocation (``join_token_ttl`` plus
  LiveKit's 60 s leeway). Written in the same transaction as the revocation; read by the LiveKit
  gateway of every instance (``ix_revocations_room``); a purge deletes the rows past ``until``
  (``ix_revocations_until``). Links already revoked before this revision get no row: their join
  tokens expired long ago (a token lives ``join_token_ttl``, one minute by default).

Revision ID: 0004_revocations
Revises: 0003_presence
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004_revocations"
down_revision: str | None = "0003_presence"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "link_revocations",
        sa.Column("link_id", sa.String(32), primary_key=True),
        sa.Column("room", sa.String(64), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("until", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_revocations_room", "link_revocations", ["room"])
    op.create_index("ix_revocations_until", "link_revocations", ["until"])
    op.execute("UPDATE linkpronto_meta SET value = '4' WHERE key = 'schema_version'")


def downgrade() -> None:
    op.execute("UPDATE linkpronto_meta SET value = '3' WHERE key = 'schema_version'")
    op.drop_index("ix_revocations_until", "link_revocations")
    op.drop_index("ix_revocations_room", "link_revocations")
    op.drop_table("link_revocations")
