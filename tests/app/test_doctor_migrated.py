"""Issue 16 point 3 after the migration guide: `doctor --project` recognises the guide's fix.

The professional's page keeps its slug room and hands it to "Gerar link" as ``roomName`` (the patient's
link joins that room through ``/_linkpronto/api/join``), and the token route that returns
``LIVEKIT_URL`` now requires the professional: neither is reported. The un-migrated shapes still are
(here, and on the example before its migration in ``tests/test_project_scan.py``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from linkpronto.project_scan import scan_project

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "nextjs-legacy"

SLUG_PAGE = """import ShareConsultationLink from "../../components/ShareConsultationLink";
export default function Page({ slug }) {
  const roomName = `consulta-${slug}`;
  return <ShareConsultationLink professionalId={slug} clientId="c" consultationType="online"%s />;
}
"""

TOKEN_ROUTE = """import { AccessToken } from "livekit-server-sdk";
%s
export default async function handler(req, res) {
  %s
  const at = new AccessToken(process.env.LIVEKIT_API_KEY, process.env.LIVEKIT_API_SECRET, { identity: "x" });
  at.addGrant({ roomJoin: true, room: String(req.query.room) });
  return res.status(200).json({ token: await at.toJwt(), wsUrl: process.env.LIVEKIT_URL });
}
"""


def _codes(project: Path) -> list[tuple[str, str]]:
    return sorted((f.code, f.file) for f in scan_project(project))


def _write(root: Path, rel: str, text: str) -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def test_the_migrated_legacy_example_reports_nothing() -> None:
    assert _codes(EXAMPLE) == []


@pytest.mark.parametrize(("prop", "reported"), [
    ("", True),  # the slug room is used, never handed to the link: the patient lands elsewhere
    (" roomName={roomName}", False),  # the guide's diff
    (" roomName={otherRoom}", True),  # another value is handed over
])
def test_a_slug_room_handed_to_the_share_component_is_the_fix(tmp_path: Path, prop: str, reported: bool) -> None:
    _write(tmp_path, "pages/professional/[slug].jsx", SLUG_PAGE % prop)
    assert (("ROOM_FROM_SLUG", "pages/professional/[slug].jsx") in _codes(tmp_path)) is reported


@pytest.mark.parametrize(("body", "reported"), [
    ("{ professionalId: slug }", True),
    ("{ professionalId: slug, roomName }", False),
    ("{ professionalId: slug, roomName: roomName }", False),
    ("{ professionalId: slug, room: roomName }", False),
])
def test_a_slug_room_sent_in_the_pages_own_create_call(tmp_path: Path, body: str, reported: bool) -> None:
    page = f"""export default function Page({{ slug }}) {{
  const roomName = `consulta-${{slug}}`;
  async function share() {{
    await fetch("/api/generate-consultation-token", {{ method: "POST", body: JSON.stringify({body}) }});
  }}
  return <button onClick={{share}}>{{roomName}}</button>;
}}
"""
    _write(tmp_path, "pages/professional/[slug].jsx", page)
    assert (("ROOM_FROM_SLUG", "pages/professional/[slug].jsx") in _codes(tmp_path)) is reported


def test_a_token_route_that_authenticates_hands_livekit_url_to_the_professional_only(tmp_path: Path) -> None:
    _write(tmp_path, "pages/api/livekit/token.js", TOKEN_ROUTE % ("", ""))
    assert ("LIVEKIT_URL_TO_BROWSER", "pages/api/livekit/token.js") in _codes(tmp_path)
    _write(tmp_path, "pages/api/livekit/token.js", TOKEN_ROUTE % (
        'import { requireProfessional } from "../../../lib/guard";',
        "if (!(await requireProfessional(req, res))) return;"))
    assert _codes(tmp_path) == []
