"""``doctor --project``: the patterns in an app's own source that break (or open) consultations.

Scans the app's JavaScript/TypeScript (``pages/``, ``app/``, ``src/``, ``lib/``, ``components/``;
never ``node_modules`` or ``.next``; bounded in files and bytes) with regular expressions over the
source with its comments blanked out (line numbers kept) — no JavaScript parser. Each finding has a
stable code, the file and line, and the exact change to make:

``LIVEKIT_URL_TO_BROWSER`` (info)
    A server route returns ``process.env.LIVEKIT_URL`` to the browser. Fine under
    ``linkpronto up --app``: ``LIVEKIT_URL`` is the address a phone can reach. Not reported when the
    route asks for a logged-in person (the migrated professional's token route).
``LOOPBACK_LIVEKIT_URL`` (warn)
    A hard-coded ``ws://localhost…`` / ``ws://127.0.0.1…`` (or LiveKit's port 7880 on loopback): a
    phone can never connect to it.
``ROOM_FROM_URL_TOKEN`` (warn)
    A page computes its LiveKit room from the URL token (``consulta-${token}``): with linkpronto's
    link token that is not the professional's room.
``ROOM_FROM_SLUG`` (warn)
    A room computed from a public slug: anyone who knows the slug knows the room. Not reported when
    the page hands that room to link creation (``roomName={roomName}`` on the share component, or
    ``roomName``/``room`` in its own create call): the migration guide's fix.
``OPEN_TOKEN_ROUTE`` (warn; info when ``app.protected_routes`` covers it)
    A route that signs LiveKit tokens (``AccessToken`` … ``addGrant``/``roomJoin``) with no sign of
    authentication, reachable through the public URL: anyone on the internet can join any room.
``DATA_DIR_IN_PROJECT`` (warn)
    linkpronto's data folder (admin token, secrets, links) is inside the app's project.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from linkpronto.i18n import Text

Level = Literal["ok", "info", "warn", "error"]
SCAN_DIRS = ("pages", "app", "src", "lib", "components")
SCAN_EXT = {".js", ".jsx", ".ts", ".tsx", ".mjs", ".cjs"}
SKIP_DIRS = {"node_modules", ".next", ".git", ".linkpronto", "out", "dist", "build", ".turbo", ".vercel"}
MAX_FILES = 2000
MAX_FILE_BYTES = 512 * 1024
MAX_TOTAL_BYTES = 32 * 1024 * 1024
MAX_PER_CODE = 10

JOIN_SNIPPET = (
    'const res = await fetch("/_linkpronto/api/join", { method: "POST", headers: { "Content-Type": '
    '"application/json" }, body: JSON.stringify({ token }) }); const { livekit_url, access_token, room } = '
    "await res.json(); await lkRoom.connect(livekit_url, access_token);"
)


@dataclass(frozen=True)
class ProjectFinding:
    code: str
    level: Level
    file: str  # relative to the project, with /
    line: int
    message: Text
    fix: Text

    @property
    def where(self) -> str:
        return f"{self.file}:{self.line}"


# -- source handling ------------------------------------------------------------------------------------
def blank_comments(source: str) -> str:
    """``source`` with every ``// …`` and ``/* … */`` comment replaced by spaces (newlines kept, so
    line numbers hold). Strings and template literals are skipped whole, so ``"http://x"`` stays."""
    out = list(source)
    i, n = 0, len(source)
    while i < n:
        c = source[i]
        if c in "\"'`":
            j = i + 1
            while j < n and source[j] != c:
                if source[j] == "\\":
                    j += 1
                elif source[j] == "\n" and c != "`":
                    break  # an unterminated string ends at the line (a regex literal with a quote…)
                j += 1
            i = j + 1
            continue
        if c == "/" and i + 1 < n and source[i + 1] == "/":
            j = source.find("\n", i)
            j = n if j < 0 else j
            out[i:j] = " " * (j - i)
            i = j
            continue
        if c == "/" and i + 1 < n and source[i + 1] == "*":
            j = source.find("*/", i + 2)
            j = n if j < 0 else j + 2
            out[i:j] = ["\n" if ch == "\n" else " " for ch in source[i:j]]
            i = j
            continue
        i += 1
    return "".join(out)


def iter_sources(project: Path) -> Iterator[tuple[Path, str]]:
    """(relative path, source) of the app's script files, bounded; symlinks are not followed."""
    count = total = 0
    seen: set[Path] = set()
    for top in SCAN_DIRS:
        base = project / top
        if not base.is_dir() or base.is_symlink():
            continue
        stack = [base]
        while stack:
            d = stack.pop()
            try:
                entries = sorted(d.iterdir())
            except OSError:
                continue
            for p in entries:
                if p.is_symlink():
                    continue
                if p.is_dir():
                    if p.name not in SKIP_DIRS:
                        stack.append(p)
                    continue
                if p.suffix not in SCAN_EXT or p in seen:
                    continue
                try:
                    size = p.stat().st_size
                    if size > MAX_FILE_BYTES:
                        continue
                    text = p.read_text("utf-8", errors="replace")
                except OSError:
                    continue
                seen.add(p)
                count += 1
                total += size
                yield p.relative_to(project), text
                if count >= MAX_FILES or total >= MAX_TOTAL_BYTES:
                    return


def _line(text: str, pos: int) -> int:
    return text.count("\n", 0, pos) + 1


def route_of(rel: Path) -> str | None:
    """The URL path a server file answers (``pages/api/livekit/token.js`` → ``/api/livekit/token``)."""
    parts = list(rel.parts)
    if parts[:1] == ["src"]:
        parts = parts[1:]
    if parts[:2] == ["pages", "api"]:
        segs = [*parts[1:-1], rel.stem]
        if segs[-1] == "index":
            segs = segs[:-1]
        return "/" + "/".join(segs)
    if parts[:1] == ["app"] and rel.stem == "route":
        segs = [s for s in parts[1:-1] if not (s.startswith("(") and s.endswith(")")) and not s.startswith("@")]
        return "/" + "/".join(segs)
    return None


def is_page(rel: Path) -> bool:
    parts = list(rel.parts)
    if parts[:1] == ["src"]:
        parts = parts[1:]
    if parts[:1] == ["pages"]:
        return parts[1:2] != ["api"]
    if parts[:1] in (["app"], ["components"]):
        return rel.stem != "route"
    return False


# -- patterns -------------------------------------------------------------------------------------------
_ENV_LIVEKIT_URL = re.compile(r"process\.env\.LIVEKIT_URL\b|process\.env\[\s*[\"']LIVEKIT_URL[\"']\s*\]"
                              r"|\{[^}]*\bLIVEKIT_URL\b[^}]*\}\s*=\s*process\.env")
_RESPONDS = re.compile(r"\bres\s*(?:\.\s*status\s*\([^)]*\)\s*)?\.\s*(?:json|send)\s*\(|\b(?:Next)?Response\s*\.\s*json\s*\("
                       r"|new\s+(?:Next)?Response\s*\(")
_LOOPBACK = re.compile(
    r"[\"'`](?P<url>(?:wss?://(?:localhost|127(?:\.\d{1,3}){3}|0\.0\.0\.0|\[::1\])(?::\d+)?"
    r"|https?://(?:localhost|127(?:\.\d{1,3}){3}|\[::1\]):7880)[^\"'`\s]*)"
)
_ROOM_NAME = r"(?:room\w*|sala\w*|\w*Room(?:Name)?)"
_TEMPLATE_WITH = r"`[^`]*\$\{{[^}}]*\b{var}\b[^}}]*\}}[^`]*`"
_CONCAT_WITH = r"[\"'][^\"'\n]*[\"']\s*\+\s*[^;\n]*\b{var}\b"


def _room_from(var: str) -> re.Pattern[str]:
    template = _TEMPLATE_WITH.format(var=var)
    concat = _CONCAT_WITH.format(var=var)
    return re.compile(
        rf"\b(?P<name>{_ROOM_NAME})\b\s*[:=]\s*(?:{template}|{concat})"  # roomName = `consulta-${token}`
        rf"|`consulta-\$\{{[^}}]*\b{var}\b"  # `consulta-${token...}` anywhere
        rf"|[\"']consulta-[\"']\s*\+\s*[^;\n]*\b{var}\b",
        re.IGNORECASE,
    )


_ROOM_FROM_TOKEN = _room_from("token")
_ROOM_FROM_SLUG = _room_from("slug")
_SIGNS = re.compile(r"\bnew\s+AccessToken\s*\(")
_SDK = re.compile(r"livekit-server-sdk|\bAccessToken\b")
_GRANT = re.compile(r"\baddGrant\s*\(|\broomJoin\b")
#: Any sign that the route asks who calls: a session, a header check, a loopback check...
_AUTH = re.compile(
    r"x-linkpronto-via|getServerSession|getSession\s*\(|\bauth\s*\(|\brequire\w*(?:User|Professional|Session|Auth|Login)\b"
    r"|\bcurrent(?:User|Professional|Session)\b|\bsession\b|\bauthorization\b|remoteAddress|\bwithAuth\b"
    r"|jwt\.verify|\bverify\w*Token\b|getToken\s*\(|supabase\.auth|clerk|currentUser|iron-session|\bisLocal\w*\b",
    re.IGNORECASE,
)


_LINK_CREATION = re.compile(r"generate-consultation-token|/api/consultation-links|ShareConsultationLink")


def room_forwarded(text: str, name: str | None) -> bool:
    """True when the page hands the room it computed (``name``) to link creation, as the migration guide
    says: ``roomName={name}`` on the share component, or ``roomName: name`` / ``room: name`` (or the
    shorthand ``{ roomName }``) in the body of its own call to the drop-in or the admin API. The link's
    patient then joins that room through ``/_linkpronto/api/join``: the slug room is the fix, not the bug."""
    if not name or not _LINK_CREATION.search(text):
        return False
    n = re.escape(name)
    forwarded = rf"\broomName\s*=\s*\{{\s*{n}\s*\}}|\b(?:roomName|room)\s*:\s*{n}\b(?!\s*[(.\[])"
    if name == "roomName":
        forwarded += r"|,\s*roomName\s*(?=[,}])|\{\s*roomName\s*,"  # { professionalId, roomName } (shorthand)
    return re.search(forwarded, text) is not None


#: The route asks for a logged-in person (the professional): a session or the app's own guard.
_PERSON_AUTH = re.compile(
    r"getServerSession|getSession\s*\(|\bauth\s*\(|\brequire\w*(?:User|Professional|Session|Auth|Login)\b"
    r"|\bcurrent(?:User|Professional|Session)\b|\bwithAuth\b|supabase\.auth|clerk|currentUser|iron-session",
    re.IGNORECASE,
)


def _loopback_findings(rel: Path, text: str) -> Iterator[ProjectFinding]:
    for m in _LOOPBACK.finditer(text):
        url = m.group("url")
        yield ProjectFinding(
            "LOOPBACK_LIVEKIT_URL", "warn", rel.as_posix(), _line(text, m.start()),
            Text(f"{rel.as_posix()}:{_line(text, m.start())} tem o endereço local {url} escrito no código: um "
                 "celular nunca consegue se conectar a ele.",
                 f"{rel.as_posix()}:{_line(text, m.start())} has the local address {url} written in the code: a "
                 "phone can never connect to it."),
            Text(f"Troque \"{url}\" por process.env.LIVEKIT_URL (no servidor; o linkpronto entrega o endereço "
                 "público) ou pelo livekit_url de /_linkpronto/api/join (no navegador), sem valor local de reserva.",
                 f"Replace \"{url}\" with process.env.LIVEKIT_URL (on the server; linkpronto hands it the public "
                 "address) or with livekit_url from /_linkpronto/api/join (in the browser), with no local fallback."),
        )


def _livekit_url_findings(rel: Path, text: str) -> Iterator[ProjectFinding]:
    # A route that authenticates its caller (the professional's token route, once patients join through
    # /_linkpronto/api/join) hands LIVEKIT_URL to the professional only: nothing to say about it.
    if route_of(rel) is None or not _RESPONDS.search(text) or _PERSON_AUTH.search(text):
        return
    m = _ENV_LIVEKIT_URL.search(text)
    if m is None:
        return
    line = _line(text, m.start())
    where = f"{rel.as_posix()}:{line}"
    yield ProjectFinding(
        "LIVEKIT_URL_TO_BROWSER", "info", rel.as_posix(), line,
        Text(f"{where} devolve LIVEKIT_URL ao navegador. Tudo bem: com 'linkpronto up --app' LIVEKIT_URL é o "
             "endereço público do LiveKit, que um celular alcança.",
             f"{where} returns LIVEKIT_URL to the browser. That is fine: under 'linkpronto up --app' LIVEKIT_URL is "
             "LiveKit's public address, which a phone can reach."),
        Text("Nada a mudar. Fora do linkpronto, LIVEKIT_URL deve ser o wss:// público, nunca ws://localhost.",
             "Nothing to change. Outside linkpronto, LIVEKIT_URL must be the public wss://, never ws://localhost."),
    )


def _room_findings(rel: Path, text: str) -> Iterator[ProjectFinding]:
    if route_of(rel) is not None or not is_page(rel):
        return
    for pattern, code in ((_ROOM_FROM_TOKEN, "ROOM_FROM_URL_TOKEN"), (_ROOM_FROM_SLUG, "ROOM_FROM_SLUG")):
        for m in pattern.finditer(text):
            if code == "ROOM_FROM_SLUG" and room_forwarded(text, m.group("name")):
                continue  # migrated: the slug room is handed to the link (roomName), the patient joins it
            line = _line(text, m.start())
            where = f"{rel.as_posix()}:{line}"
            shown = " ".join(m.group(0).split())[:80]
            if code == "ROOM_FROM_URL_TOKEN":
                yield ProjectFinding(
                    code, "warn", rel.as_posix(), line,
                    Text(f"{where} calcula a sala do LiveKit a partir do token da URL ({shown}): com o token do link "
                         "do linkpronto essa não é a sala do profissional, e ninguém se encontra.",
                         f"{where} computes the LiveKit room from the URL token ({shown}): with linkpronto's link "
                         "token that is not the professional's room, and nobody meets."),
                    Text("Na página do paciente, troque a chamada à sua rota de token por /_linkpronto/api/join, que "
                         f"devolve a sala do link: {JOIN_SNIPPET}",
                         "In the patient's page, replace the call to your token route with /_linkpronto/api/join, "
                         f"which answers the link's room: {JOIN_SNIPPET}"),
                )
            else:
                yield ProjectFinding(
                    code, "warn", rel.as_posix(), line,
                    Text(f"{where} calcula a sala a partir de um slug público ({shown}): quem souber o slug sabe a sala.",
                         f"{where} computes the room from a public slug ({shown}): whoever knows the slug knows the room."),
                    Text("Ao gerar o link, envie esse nome como roomName (o link do paciente entra nessa sala) e use o "
                         "'room' devolvido; o paciente entra só por /_linkpronto/api/join. Proteja a rota de token "
                         "(app.protected_routes ou a sessão do profissional).",
                         "When generating the link, send that name as roomName (the patient's link joins that room) "
                         "and use the 'room' answered; the patient joins only through /_linkpronto/api/join. Protect "
                         "the token route (app.protected_routes or the professional's session)."),
                )


def _open_token_route(rel: Path, text: str, protected: list[str]) -> Iterator[ProjectFinding]:
    route = route_of(rel)
    if route is None or not (_SIGNS.search(text) and _SDK.search(text) and _GRANT.search(text)):
        return
    if _AUTH.search(text):
        return
    m = _SIGNS.search(text)
    assert m is not None
    line = _line(text, m.start())
    where = f"{rel.as_posix()}:{line}"
    from linkpronto.gateway.guard import RouteMatcher

    if RouteMatcher(protected)(route):
        yield ProjectFinding(
            "OPEN_TOKEN_ROUTE", "info", rel.as_posix(), line,
            Text(f"{where} ({route}) assina tokens do LiveKit sem autenticação, mas app.protected_routes a protege: "
                 "pelo endereço público só um navegador que abriu um link válido chega a ela.",
                 f"{where} ({route}) signs LiveKit tokens without authentication, but app.protected_routes guards it: "
                 "through the public URL only a browser that opened a valid link reaches it."),
            Text("Quando a página do paciente usar /_linkpronto/api/join, exija a sessão do profissional aqui.",
                 "Once the patient's page uses /_linkpronto/api/join, require the professional's session here."),
        )
        return
    toml = f'[app]\nprotected_routes = ["{route}"]'
    yield ProjectFinding(
        "OPEN_TOKEN_ROUTE", "warn", rel.as_posix(), line,
        Text(f"{where} ({route}) assina tokens do LiveKit para qualquer sala sem perguntar quem chama, e pelo "
             "túnel ela está na internet: qualquer pessoa entra em qualquer consulta, e expiração, limite de usos "
             "e cancelamento dos links não valem.",
             f"{where} ({route}) signs LiveKit tokens for any room without asking who calls, and through the tunnel "
             "it is on the internet: anyone can join any consultation, and the links' expiry, use limit and revoke "
             "do nothing."),
        Text(f"Feche já, sem mudar o app: no linkpronto.toml, {toml} (ou LINKPRONTO_APP_PROTECTED_ROUTES='[\"{route}\"]'). "
             "Depois: a página do paciente usa /_linkpronto/api/join e esta rota exige a sessão do profissional.",
             f"Close it now without changing the app: in linkpronto.toml, {toml} (or "
             f"LINKPRONTO_APP_PROTECTED_ROUTES='[\"{route}\"]'). Then: the patient's page uses /_linkpronto/api/join "
             "and this route requires the professional's session."),
    )


def data_dir_finding(project: Path, data_dir: Path) -> ProjectFinding | None:
    try:
        project_r, data_r = project.resolve(), data_dir.resolve()
    except OSError:
        return None
    if not data_r.is_relative_to(project_r):
        return None
    rel = data_r.relative_to(project_r).as_posix() or "."
    return ProjectFinding(
        "DATA_DIR_IN_PROJECT", "warn", rel, 0,
        Text(f"A pasta de dados do linkpronto ({data_r}) fica dentro do projeto do app: o 'next dev' a vigia (cada "
             "link criado o faz recompilar) e o git mostra o token de administrador, os segredos e os links.",
             f"linkpronto's data folder ({data_r}) is inside the app's project: 'next dev' watches it (each link "
             "created makes it recompile) and git shows the admin token, the secrets and the links."),
        Text("Tire server.data_dir do linkpronto.toml (o padrão é a pasta de dados do usuário) ou aponte-o para fora "
             f"do projeto (LINKPRONTO_SERVER_DATA_DIR); e adicione {rel}/ ao .gitignore.",
             "Remove server.data_dir from linkpronto.toml (the default is the user's data folder) or point it outside "
             f"the project (LINKPRONTO_SERVER_DATA_DIR); and add {rel}/ to .gitignore."),
    )


def scan_project(project: Path, *, data_dir: Path | None = None,
                 protected_routes: list[str] | None = None) -> list[ProjectFinding]:
    """Every finding in ``project``, at most :data:`MAX_PER_CODE` per code, in file order."""
    found: list[ProjectFinding] = []
    if data_dir is not None and (d := data_dir_finding(project, data_dir)) is not None:
        found.append(d)
    per_code: dict[str, int] = {}
    for rel, source in iter_sources(project):
        text = blank_comments(source)
        for f in (*_livekit_url_findings(rel, text), *_loopback_findings(rel, text),
                  *_room_findings(rel, text), *_open_token_route(rel, text, protected_routes or [])):
            if per_code.get(f.code, 0) < MAX_PER_CODE:
                per_code[f.code] = per_code.get(f.code, 0) + 1
                found.append(f)
    return found
