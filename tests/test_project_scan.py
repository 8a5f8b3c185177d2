"""``doctor --project`` (issue 16, point 3): the app's own patterns, each with file:line and the change.

One test per pattern on files written to ``tmp_path``, then the examples: every pattern on the
legacy-shaped app, none on ``examples/nextjs-pages/``.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from linkpronto.config import defaults
from linkpronto.doctor import run_doctor
from linkpronto.project_scan import MAX_FILE_BYTES, blank_comments, route_of, scan_project

ROOT = Path(__file__).resolve().parent.parent
LEGACY_FIXTURE = Path(__file__).parent / "fixtures" / "legacyapp"
PAGES = ROOT / "examples" / "nextjs-pages"
ALL_CODES = {"LIVEKIT_URL_TO_BROWSER", "LOOPBACK_LIVEKIT_URL", "ROOM_FROM_URL_TOKEN", "ROOM_FROM_SLUG",
             "OPEN_TOKEN_ROUTE", "DATA_DIR_IN_PROJECT"}


def write(root: Path, rel: str, text: str) -> Path:
    p = root / rel
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(text, "utf-8")
    return p


def codes(project: Path, **kw: object) -> list[tuple[str, str, int]]:
    return [(f.code, f.file, f.line) for f in scan_project(project, **kw)]  # type: ignore[arg-type]


OPEN_ROUTE = """import { AccessToken } from "livekit-server-sdk";
export default async function handler(req, res) {
  const at = new AccessToken(process.env.LIVEKIT_API_KEY, process.env.LIVEKIT_API_SECRET, { identity: req.body.identity });
  at.addGrant({ roomJoin: true, room: req.body.room });
  res.json({ token: await at.toJwt() });
}
"""


def test_blank_comments_keeps_lines_and_strings() -> None:
    src = 'const a = "http://x"; // ws://localhost\n/* ws://127.0.0.1\n */ const b = `//${c}`;\n'
    out = blank_comments(src)
    assert out.count("\n") == src.count("\n") and len(out) == len(src)
    assert '"http://x"' in out and "`//${c}`" in out and "localhost" not in out and "127.0.0.1" not in out


def test_route_of_pages_and_app_router() -> None:
    assert route_of(Path("pages/api/livekit/token.js")) == "/api/livekit/token"
    assert route_of(Path("src/pages/api/rooms/index.ts")) == "/api/rooms"
    assert route_of(Path("app/(site)/api/livekit/token/route.ts")) == "/api/livekit/token"
    assert route_of(Path("pages/index.js")) is None and route_of(Path("lib/livekit.js")) is None


def test_livekit_url_returned_by_a_route_is_informational(tmp_path: Path) -> None:
    write(tmp_path, "pages/api/livekit/token.js",
          "export default function h(req, res) {\n  const auth = req.headers.authorization;\n"
          "  res.status(200).json({ wsUrl: process.env.LIVEKIT_URL || process.env.NEXT_PUBLIC_LIVEKIT_URL });\n}\n")
    write(tmp_path, "app/api/lk/route.ts",
          "const { LIVEKIT_URL } = process.env;\nexport async function GET() { return Response.json({ url: LIVEKIT_URL }); }\n")
    write(tmp_path, "pages/api/public.js", "export default (req, res) => res.json({ u: process.env.NEXT_PUBLIC_LIVEKIT_URL });\n")
    write(tmp_path, "components/Call.jsx", "const u = process.env.LIVEKIT_URL;\n")  # not a route
    found = sorted(scan_project(tmp_path), key=lambda f: f.where)
    assert [(f.code, f.where, f.level) for f in found] == [
        ("LIVEKIT_URL_TO_BROWSER", "app/api/lk/route.ts:1", "info"),
        ("LIVEKIT_URL_TO_BROWSER", "pages/api/livekit/token.js:3", "info"),
    ]
    assert "pages/api/livekit/token.js:3" in found[1].message.pt and "fine" in found[1].message.en


def test_a_hard_coded_loopback_livekit_url_is_a_problem(tmp_path: Path) -> None:
    write(tmp_path, "lib/lk.js",
          'const a = "ws://localhost:7880";\n'
          "// const b = 'ws://127.0.0.1:7880';\n"
          "const c = `wss://127.0.0.1/rtc`;\n"
          'const d = "http://localhost:3001/api";\n'  # the app calling itself: not LiveKit
          "const e = 'http://127.0.0.1:7880';\n")
    found = scan_project(tmp_path)
    assert [(f.code, f.line) for f in found] == [("LOOPBACK_LIVEKIT_URL", 1), ("LOOPBACK_LIVEKIT_URL", 3),
                                                 ("LOOPBACK_LIVEKIT_URL", 5)]
    assert found[0].level == "warn" and '"ws://localhost:7880"' in found[0].fix.en
    assert "process.env.LIVEKIT_URL" in found[0].fix.pt


def test_room_from_the_url_token_in_a_page(tmp_path: Path) -> None:
    write(tmp_path, "pages/consultations/client/[token].jsx",
          "const { token } = router.query;\nconst roomName = `consulta-${String(token).toLowerCase()}`;\n")
    write(tmp_path, "app/c/[token]/page.tsx", "connect({ room: `sala-${params.token}` });\n")
    write(tmp_path, "components/Call.jsx", "const r = 'consulta-' + token;\nconst room = grant.room;\n"
          "const label = `Sala ${room}`; const accessToken = `${x}`;\n")
    write(tmp_path, "pages/api/livekit/token.js", "const room = `consulta-${token}`;\n")  # server: not a page
    found = sorted((c, f, line) for c, f, line in codes(tmp_path) if c == "ROOM_FROM_URL_TOKEN")
    assert found == [("ROOM_FROM_URL_TOKEN", "app/c/[token]/page.tsx", 1),
                     ("ROOM_FROM_URL_TOKEN", "components/Call.jsx", 1),
                     ("ROOM_FROM_URL_TOKEN", "pages/consultations/client/[token].jsx", 2)]
    f = next(x for x in scan_project(tmp_path) if x.code == "ROOM_FROM_URL_TOKEN")
    assert "/_linkpronto/api/join" in f.fix.en and "/_linkpronto/api/join" in f.fix.pt


def test_room_from_a_public_slug(tmp_path: Path) -> None:
    write(tmp_path, "pages/professional/[slug].jsx", 'const { slug } = router.query;\nconst room = "consulta-" + slug;\n')
    write(tmp_path, "pages/p.jsx", "const roomName = `consulta-${professional.slug}`;\n")
    found = sorted(scan_project(tmp_path), key=lambda f: f.where)
    assert [(f.code, f.where) for f in found] == [("ROOM_FROM_SLUG", "pages/p.jsx:1"),
                                                  ("ROOM_FROM_SLUG", "pages/professional/[slug].jsx:2")]
    assert "roomName" in found[0].fix.en


def test_an_open_livekit_token_route(tmp_path: Path) -> None:
    write(tmp_path, "pages/api/livekit/token.js", OPEN_ROUTE)
    found = scan_project(tmp_path)
    assert [(f.code, f.where, f.level) for f in found] == [("OPEN_TOKEN_ROUTE", "pages/api/livekit/token.js:3", "warn")]
    assert 'protected_routes = ["/api/livekit/token"]' in found[0].fix.en and "/api/livekit/token" in found[0].message.pt
    # Guarded by the gateway: informational.
    guarded = scan_project(tmp_path, protected_routes=["/api/livekit"])
    assert [(f.code, f.level) for f in guarded] == [("OPEN_TOKEN_ROUTE", "info")]
    # Any sign of authentication: not reported.
    for check in ("const who = await getServerSession(req, res, opts);",
                  'if (req.headers["x-linkpronto-via"] === "public") return res.status(401).end();',
                  "const pro = await requireProfessional(req, res);"):
        write(tmp_path, "pages/api/livekit/token.js", OPEN_ROUTE.replace("  const at", f"  {check}\n  const at"))
        assert codes(tmp_path) == [], check
    # A word in a comment is no authentication.
    write(tmp_path, "pages/api/livekit/token.js", "// TODO: getServerSession\n" + OPEN_ROUTE)
    assert [c for c, _, _ in codes(tmp_path)] == ["OPEN_TOKEN_ROUTE"]


def test_data_dir_inside_the_project(tmp_path: Path) -> None:
    assert [c for c, _, _ in codes(tmp_path, data_dir=tmp_path / ".linkpronto")] == ["DATA_DIR_IN_PROJECT"]
    assert codes(tmp_path / "app", data_dir=tmp_path / "data") == []
    f = scan_project(tmp_path, data_dir=tmp_path / ".linkpronto")[0]
    assert ".linkpronto/" in f.fix.en and ".gitignore" in f.fix.pt


def test_the_scan_is_bounded_and_skips_build_output(tmp_path: Path) -> None:
    for skipped in ("node_modules/x/pages/a.js", "pages/.next/b.js", "src/node_modules/c.js"):
        write(tmp_path, skipped, 'const a = "ws://localhost:7880";\n')
    write(tmp_path, "lib/big.js", 'const a = "ws://localhost:7880";\n' + " " * MAX_FILE_BYTES)
    write(tmp_path, "other/x.js", 'const a = "ws://localhost:7880";\n')  # not an app source folder
    assert codes(tmp_path) == []


def _doctor_codes(project: Path) -> set[str]:
    report = run_doctor(defaults(data_dir=project / ".linkpronto"), project)
    for c in report["checks"]:
        if c.get("code") and c["code"] != "DATA_DIR_IN_PROJECT":
            assert f"{c['file']}:{c['line']}" in c["message"] and c["fix"], c
    return {c["code"] for c in report["checks"] if c.get("code")}


def test_every_pattern_on_the_legacy_shaped_fixture() -> None:
    assert _doctor_codes(LEGACY_FIXTURE) == ALL_CODES


@pytest.mark.slow  # unmigrated_copy runs `git apply -R` of the example's MIGRATION.diff
def test_every_pattern_on_examples_nextjs_legacy_before_its_migration(tmp_path: Path) -> None:
    from helpers.legacy_example import unmigrated_copy

    project = unmigrated_copy(tmp_path / "legacy")
    # Its token route reads LIVEKIT_URL (no loopback literal: that one came from linkpronto's env).
    assert _doctor_codes(project) == ALL_CODES - {"LOOPBACK_LIVEKIT_URL"}
    found = {(f.code, f.file) for f in scan_project(project)}
    assert ("OPEN_TOKEN_ROUTE", "pages/api/livekit/token.js") in found
    assert ("LIVEKIT_URL_TO_BROWSER", "pages/api/livekit/token.js") in found
    assert ("ROOM_FROM_URL_TOKEN", "pages/consultations/client/[token].js") in found
    assert ("ROOM_FROM_SLUG", "pages/professional/[slug].js") in found


def test_nothing_on_the_nextjs_pages_example(tmp_path: Path) -> None:
    assert codes(PAGES, data_dir=tmp_path / "data") == []


def test_doctor_json_carries_code_file_and_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from linkpronto.cli import app

    monkeypatch.setenv("LINKPRONTO_SERVER_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("LINKPRONTO_LANG", "en")
    monkeypatch.chdir(tmp_path)
    res = CliRunner().invoke(app, ["doctor", "--json", "--project", str(LEGACY_FIXTURE)])
    doc = json.loads(res.stdout)
    open_route = next(c for c in doc["checks"] if c.get("code") == "OPEN_TOKEN_ROUTE")
    assert open_route["file"] == "pages/api/livekit/token.js" and open_route["line"] == 6
    assert open_route["name"] == "project.open_token_route" and open_route["level"] == "warn"
