"""0.2.0 (events): who is in the room, and the app callbacks' outbox.

- ``consultation_links``: ``presence`` (waiting / in_call / ended), ``presence_since``, ``waiting_name``
  (the patient's display name while waiting), ``presence_json`` (per-participant state that makes
  LiveKit's retried or reordered webhooks idempotent) and ``presence_version`` (optimistic lock:
  instances applying webhooks to the same link never lose an update); ``ix_links_room`` (a webhook
  names the room, not the link); ``ix_links_presence_since`` (instances sharing the database look
  for presence changes another one applied).
- ``event_outbox``: presence events waiting to be POSTed to ``app.events_url`` (written in the same
  transaction as the presence change; at-least-once delivery survives restarts).

Revision ID: 0003_presence
Revises: 0002_v020
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003_presence"
down_revision: str | None = "0002_v020"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("consultation_links") as batch:
        batch.add_column(sa.Column("presence", sa.String(16), nullable=True))
        batch.add_column(sa.Column("presence_since", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("waiting_name", sa.String(80), nullable=True))
        batch.add_column(sa.Column("presence_json", sa.Text(), nullable=True))
        batch.add_column(sa.Column("presence_version", sa.Integer(), nullable=True))
    op.create_index("ix_links_room", "consultation_links", ["room"])
    op.create_index("ix_links_presence_since", "consultation_links", ["presence_since"])
    op.create_table(
        "event_outbox",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("link_id", sa.String(32), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("gave_up_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.String(300), nullable=True),
    )
    op.create_index("ix_outbox_pending", "event_outbox", ["delivered_at", "created_at"])
    op.execute("UPDATE linkpronto_meta SET value = '3' WHERE key = 'schema_version'")


def downgrade() -> None:
    op.execute("UPDATE linkpronto_meta SET value = '2' WHERE key = 'schema_version'")
    op.drop_index("ix_outbox_pending", "event_outbox")
    op.drop_table("event_outbox")
    op.drop_index("ix_links_presence_since", "consultation_links")
    op.drop_index("ix_links_room", "consultation_links")
    with op.batch_alter_table("consultation_links") as batch:
        for name in ("presence_version", "presence_json", "waiting_name", "presence_since", "presence"):
            batch.drop_column(name)
