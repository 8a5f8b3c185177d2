"""0003_presence: presence columns and the callback outbox, on top of scale's 0002_v020."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import inspect

from linkpronto.links import migrations
from linkpronto.links.store import LinkStore, sqlite_url

PRESENCE_COLUMNS = {"presence", "presence_since", "waiting_name", "presence_json", "presence_version"}


def test_0003_presence_steps_back_to_0002(tmp_path: Path) -> None:
    store = LinkStore(sqlite_url(tmp_path))
    try:
        with store.engine.connect() as conn:
            insp = inspect(conn)
            assert PRESENCE_COLUMNS <= {c["name"] for c in insp.get_columns("consultation_links")}
            assert "ix_links_room" in {i["name"] for i in insp.get_indexes("consultation_links")}
            assert "event_outbox" in insp.get_table_names()
        migrations.downgrade(store.engine, "0002_v020")
        with store.engine.connect() as conn:
            insp = inspect(conn)
            assert not PRESENCE_COLUMNS & {c["name"] for c in insp.get_columns("consultation_links")}
            assert "event_outbox" not in insp.get_table_names()
            assert "last_used_at" in {c["name"] for c in insp.get_columns("consultation_links")}  # 0002 stays
        assert migrations.upgrade(store.engine) == migrations.head_revision()
    finally:
        store.close()
