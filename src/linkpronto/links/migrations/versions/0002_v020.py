"""0.2.0: what retention needs, and the deployment's shared secrets.

- ``consultation_links.last_used_at``: when the last use was counted (a used-up link's retention
  clock starts there); ``ix_links_expires`` for the purge.
- ``linkpronto_secrets``: the deployment's shared secrets (probe HMAC key, the key that encrypts
  stored link tokens, the admin token), created once by the first ``linkpronto serve`` instance so
  that every instance proves "this deployment" and can serve any link.

Revision ID: 0002_v020
Revises: 0001_baseline
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002_v020"
down_revision: str | None = "0001_baseline"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("consultation_links") as batch:
        batch.add_column(sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True))
    op.create_index("ix_links_expires", "consultation_links", ["expires_at"])
    op.create_table(
        "linkpronto_secrets",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("value", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.execute("UPDATE linkpronto_meta SET value = '2' WHERE key = 'schema_version'")


def downgrade() -> None:
    op.execute("UPDATE linkpronto_meta SET value = '1' WHERE key = 'schema_version'")
    op.drop_table("linkpronto_secrets")
    op.drop_index("ix_links_expires", "consultation_links")
    with op.batch_alter_table("consultation_links") as batch:
        batch.drop_column("last_used_at")
