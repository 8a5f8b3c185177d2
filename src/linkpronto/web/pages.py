"""The HTML documents of linkpronto's pages: admin dashboard, professional's call page, patient page.

Pure functions: they only read package files (``static/i18n.json``). The text is rendered on the
server in the requested language, so the first paint is already localized and the "link gone"
pages need no script at all; the same string table (both languages) is embedded in the page as
JSON for the scripts, which switch language in place. Scripts and styles come from
``/_linkpronto/static/`` on the page's own origin; a Content-Security-Policy meta forbids any
other script source.
"""

from __future__ import annotations

import functools
import html
import json
from typing import Literal

from linkpronto.i18n import Lang, normalize_lang
from linkpronto.paths import STATIC
from linkpronto.web.assets import STATIC_DIR

PatientState = Literal["ok", "not_found", "expired", "revoked", "exhausted"]
DEVICE_TEST_TYPE = "teste-de-dispositivo"
"""``consultation_type`` of the dashboard's "test on my phone" links."""

_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "media-src 'self' blob: mediastream:; connect-src 'self' ws: wss: https:; "
    "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
)
# connect-src allows ws:/wss:/https: because in LiveKit Cloud mode the signalling URL is not our
# origin; scripts, styles and frames stay locked to 'self'.


@functools.cache
def _table() -> dict[str, dict[str, str]]:
    raw = json.loads((STATIC_DIR / "i18n.json").read_text(encoding="utf-8"))
    return {"pt-BR": dict(raw["pt-BR"]), "en": dict(raw["en"])}


def _s(lang: Lang, key: str, **kw: str) -> str:
    """Localized text, HTML-escaped (placeholders are escaped too)."""
    text = _table()[lang].get(key) or _table()["pt-BR"][key]
    if kw:
        text = text.format(**kw)
    return html.escape(text)


def _t(lang: Lang, key: str) -> str:
    """An element's ``data-i18n`` attribute plus nothing else; pair with :func:`_s` for the text."""
    return f'data-i18n="{html.escape(key)}"'


def _strings_json(prefixes: tuple[str, ...]) -> str:
    table = {
        lang: {k: v for k, v in strings.items() if k.startswith(prefixes)}
        for lang, strings in _table().items()
    }
    return _json_for_script(table)


def _json_for_script(value: object) -> str:
    # "<" escaped so that no "</script>" can end the element early.
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).replace("<", "\\u003c")


def _asset(name: str) -> str:
    return f"{STATIC}/{name}"


def _document(
    *,
    lang: Lang,
    title: str,
    body: str,
    page: str,
    prefixes: tuple[str, ...],
    scripts: tuple[str, ...] = (),
    data: object = None,
) -> str:
    script_tags = "".join(f'<script type="module" src="{_asset(s)}"></script>' for s in scripts)
    data_tag = (
        f'<script type="application/json" id="lp-data">{_json_for_script(data)}</script>'
        if data is not None
        else ""
    )
    strings_tag = (
        f'<script type="application/json" id="lp-i18n">{_strings_json(prefixes)}</script>'
        if scripts
        else ""
    )
    return (
        "<!doctype html>\n"
        f'<html lang="{lang}">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1, viewport-fit=cover">\n'
        f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">\n'
        '<meta name="referrer" content="no-referrer">\n'
        '<meta name="robots" content="noindex, nofollow">\n'
        '<meta name="color-scheme" content="light dark">\n'
        '<link rel="icon" href="data:,">\n'
        f'<link rel="stylesheet" href="{_asset("app.css")}">\n'
        f"<title {_t(lang, title)}>{_s(lang, title)}</title>\n"
        f"{script_tags}\n</head>\n"
        f'<body data-page="{page}">\n{body}\n{strings_tag}{data_tag}\n</body>\n</html>\n'
    )


def _lang_toggle(lang: Lang) -> str:
    other = "pt-BR" if lang == "en" else "en"
    return (
        f'<a class="lang-toggle" id="lang-toggle" href="?lang={other}" hreflang="{other}" lang="{other}" '
        f'title="{_s(lang, "lang.switch_label")}" {_t(lang, "lang.switch")}>{_s(lang, "lang.switch")}</a>'
    )


def _el(lang: Lang, tag: str, key: str, attrs: str = "") -> str:
    """``<tag data-i18n=key attrs>text</tag>``."""
    space = " " if attrs else ""
    return f"<{tag} {_t(lang, key)}{space}{attrs}>{_s(lang, key)}</{tag}>"


# --------------------------------------------------------------------------------------------- admin


def dashboard_html(lang: str) -> str:
    """Admin ``GET /``: status, "Gerar link", device test, links table."""
    lg = normalize_lang(lang)
    e = functools.partial(_el, lg)
    body = f"""
<header class="topbar">
  <h1>linkpronto <span class="sub" {_t(lg, "dash.heading")}>{_s(lg, "dash.heading")}</span></h1>
  <span class="badge" id="stack-state" role="status" data-state="unknown">{_s(lg, "dash.state.unknown")}</span>
  {_lang_toggle(lg)}
  {e("button", "dash.logout", 'type="button" id="logout" class="small"')}
</header>
<main class="dash">
<p class="stream-note" id="stream-note" role="status" aria-live="polite">{_s(lg, "dash.stream_connecting")}</p>
<div id="presence-notice" class="presence-notice" role="alert" aria-live="assertive" hidden></div>
<label class="presence-sound help"><input type="checkbox" id="presence-sound" checked>
  <span {_t(lg, "dash.presence.sound")}>{_s(lg, "dash.presence.sound")}</span></label>

<div class="dash-actions">
<section class="card" id="gen" aria-labelledby="gen-h">
  {e("h2", "dash.gen.heading", 'id="gen-h"')}
  <form id="gen-form" novalidate>
    <div class="field">
      {e("label", "dash.gen.professional", 'for="professional_id"')}
      <input id="professional_id" name="professional_id" required autocomplete="off">
    </div>
    <div class="field">
      {e("label", "dash.gen.client", 'for="client_id"')}
      <input id="client_id" name="client_id" autocomplete="off">
    </div>
    <div class="field">
      {e("label", "dash.gen.type", 'for="consultation_type"')}
      <input id="consultation_type" name="consultation_type" autocomplete="off"
        placeholder="{_s(lg, "dash.gen.type_placeholder")}" data-i18n-placeholder="dash.gen.type_placeholder">
    </div>
    {e("button", "dash.gen.submit", 'type="submit" class="primary" id="gen-submit"')}
  </form>
  <div id="gen-result" class="result" aria-live="polite" hidden></div>
</section>

<section class="card" id="devtest" aria-labelledby="devtest-h">
  {e("h2", "dash.devtest.heading", 'id="devtest-h"')}
  {e("p", "dash.devtest.intro", 'class="help"')}
  {e("button", "dash.devtest.start", 'type="button" id="devtest-start"')}
  <div id="devtest-result" class="result" aria-live="polite" hidden></div>
</section>
</div>

<section class="card" id="status" aria-labelledby="status-h">
  {e("h2", "dash.status.heading", 'id="status-h"')}
  <dl class="kv">
    {e("dt", "dash.status.public_url")}<dd id="public-url">{_s(lg, "common.none")}</dd>
    {e("dt", "dash.status.tunnel")}<dd><strong id="tunnel-provider">{_s(lg, "common.none")}</strong>
      <span class="help" id="tunnel-tradeoff"></span></dd>
    {e("dt", "dash.media.heading")}<dd><strong id="media-reach">{_s(lg, "dash.media.unknown")}</strong>
      <span class="help" id="media-help">{_s(lg, "dash.media.unknown_help")}</span>
      <span class="help" id="media-detail"></span></dd>
  </dl>
  {e("h3", "dash.status.problems", 'id="problems-h" hidden')}
  <ul id="problems" class="problems"></ul>
  {e("h3", "dash.status.components")}
  <ul id="components" class="steps"></ul>
  {e("h3", "dash.status.checks")}
  <p class="help" id="checked-at"></p>
  <ul id="checks" class="steps"><li>{_s(lg, "dash.status.no_checks")}</li></ul>
</section>


<section class="card wide" id="links" aria-labelledby="links-h">
  <div class="row">
    {e("h2", "dash.links.heading", 'id="links-h"')}
    {e("button", "dash.links.refresh", 'type="button" id="links-refresh" class="small"')}
  </div>
  <p id="links-note" role="status" aria-live="polite" class="help"></p>
  <div class="table-wrap">
  <table id="links-table">
    <thead><tr>
      {e("th", "dash.links.col.who", 'scope="col"')}{e("th", "dash.links.col.type", 'scope="col"')}
      {e("th", "dash.links.col.status", 'scope="col"')}{e("th", "dash.links.col.expires", 'scope="col"')}
      {e("th", "dash.links.col.uses", 'scope="col"')}{e("th", "dash.links.col.device", 'scope="col"')}
      {e("th", "dash.links.col.actions", 'scope="col"')}
    </tr></thead>
    <tbody id="links-body"><tr><td colspan="7">{_s(lg, "dash.links.empty")}</td></tr></tbody>
  </table>
  </div>
</section>
</main>

<dialog id="confirm" aria-labelledby="confirm-h">
  <form method="dialog">
    <h2 id="confirm-h"></h2>
    <p id="confirm-text"></p>
    <div class="row">
      <button value="cancel" id="confirm-no"></button>
      <button value="ok" class="danger" id="confirm-yes"></button>
    </div>
  </form>
</dialog>
"""
    return _document(
        lang=lg,
        title="dash.title",
        body=body,
        page="dashboard",
        prefixes=("lang.", "common.", "dash.", "pat.check."),
        scripts=("dashboard.js",),
    )


def call_html(link_id: str, lang: str) -> str:
    """Admin ``GET /call/{link_id}``: the professional joins the link's room with the host token."""
    lg = normalize_lang(lang)
    e = functools.partial(_el, lg)
    body = f"""
<header class="topbar">
  <h1>linkpronto <span class="sub" {_t(lg, "call.heading")}>{_s(lg, "call.heading")}</span></h1>
  {_lang_toggle(lg)}
</header>
<main class="call">
  <p id="conn-state" class="conn" role="status" aria-live="polite"></p>
  <div id="call-error" class="error-box" role="alert" hidden></div>
  <div class="stage">
    <figure class="remote"><div id="remote-video" class="video-box"></div>
      <figcaption id="remote-caption" {_t(lg, "call.waiting_patient")}>{_s(lg, "call.waiting_patient")}</figcaption>
    </figure>
    <figure class="local"><video id="local-video" autoplay muted playsinline></video>
      {e("figcaption", "call.you")}</figure>
  </div>
  <div class="controls">
    {e("button", "call.start", 'type="button" class="primary" id="call-start"')}
    {e("button", "call.mic_off", 'type="button" id="toggle-mic" hidden')}
    {e("button", "call.cam_off", 'type="button" id="toggle-cam" hidden')}
    {e("button", "call.end", 'type="button" class="danger" id="call-end" hidden')}
  </div>
  <section class="card" aria-labelledby="link-h">
    {e("h2", "call.link_label", 'id="link-h"')}
    <div class="copy-row"><input id="link-url" readonly aria-labelledby="link-h">
      {e("button", "common.copy", 'type="button" id="link-copy"')}</div>
    <p id="link-info" class="help"></p>
  </section>
  <p id="call-note" role="status" aria-live="polite"></p>
</main>
<dialog id="confirm" aria-labelledby="confirm-h">
  <form method="dialog">
    {e("h2", "call.revoke_title", 'id="confirm-h"')}
    {e("p", "call.revoke_text")}
    <div class="row">
      {e("button", "call.revoke_no", 'value="cancel" id="confirm-no"')}
      {e("button", "call.revoke_yes", 'value="ok" class="danger" id="confirm-yes"')}
    </div>
  </form>
</dialog>
"""
    return _document(
        lang=lg,
        title="call.title",
        body=body,
        page="call",
        prefixes=("lang.", "common.", "call.", "conn.", "dash.link_status."),
        scripts=("call.js",),
        data={"link_id": link_id},
    )


# -------------------------------------------------------------------------------------------- public

_GONE_KEY: dict[str, str] = {
    "not_found": "gone.not_found",
    "expired": "gone.expired",
    "revoked": "gone.revoked",
    "exhausted": "gone.exhausted",
}


def patient_html(*, state: PatientState, consultation_type: str | None, lang: str) -> str:
    """Public ``GET <link_path>``: the patient page (``state="ok"``) or the calm "link gone" page.

    The gone pages (404 unknown, 410 expired/revoked/used up) have no script. The token is never
    part of the document: the script reads it from the last segment of ``location.pathname``.
    """
    lg = normalize_lang(lang)
    if state != "ok":
        return _gone_html(state, lg)
    e = functools.partial(_el, lg)
    is_test = consultation_type == DEVICE_TEST_TYPE
    if is_test:
        welcome = e("h1", "pat.devtest.heading", 'id="welcome"')
        intro = e("p", "pat.devtest.intro")
        action = e("button", "pat.devtest.run", 'type="button" class="primary big" id="join"')
    else:
        if consultation_type:
            vars_attr = html.escape(json.dumps({"type": consultation_type}, ensure_ascii=False))
            welcome = (
                f'<h1 id="welcome" data-i18n="pat.welcome_type" data-i18n-vars="{vars_attr}">'
                f"{_s(lg, 'pat.welcome_type', type=consultation_type)}</h1>"
            )
        else:
            welcome = e("h1", "pat.welcome", 'id="welcome"')
        intro = e("p", "pat.intro")
        action = e("button", "pat.join", 'type="button" class="primary big" id="join"')
    body = f"""
<header class="topbar slim">{_lang_toggle(lg)}</header>
<main class="patient" id="main">
<section id="lobby" aria-labelledby="welcome">
  {welcome}
  {intro}
  <div id="env-warning" class="warn-box" role="alert" hidden></div>
  <div class="preview">
    <video id="preview" autoplay muted playsinline aria-label="{_s(lg, "pat.preview_label")}"
      data-i18n-aria="pat.preview_label"></video>
    <div class="meter" role="meter" aria-valuemin="0" aria-valuemax="100" aria-valuenow="0"
      aria-label="{_s(lg, "pat.mic_level")}" data-i18n-aria="pat.mic_level"><span id="mic-bar"></span></div>
  </div>
  <p id="media-state" class="help" role="status" aria-live="polite">{_s(lg, "pat.asking")}</p>
  <div id="media-help" class="error-box" role="alert" hidden></div>
  {e("button", "pat.enable", 'type="button" id="enable-media"')}
  <div class="field"{' hidden' if is_test else ''}>
    {e("label", "pat.name", 'for="display-name"')}
    <input id="display-name" name="display_name" autocomplete="name" maxlength="80"
      aria-describedby="name-hint">
    <span class="help" id="name-hint" {_t(lg, "pat.name_hint")}>{_s(lg, "pat.name_hint")}</span>
  </div>
  {action}
  <div id="join-error" class="error-box" role="alert" hidden></div>
  <div id="checks-box" hidden>
    {e("p", "pat.checking", 'id="checks-title"')}
    <ul id="checks" class="steps"></ul>
    <p id="checks-note" class="help" role="status" aria-live="polite"></p>
  </div>
</section>
<section id="in-call" hidden aria-label="{_s(lg, "pat.title")}" data-i18n-aria="pat.title">
  <p id="conn-state" class="conn" role="status" aria-live="polite"></p>
  <div class="stage">
    <figure class="remote"><div id="remote-video" class="video-box"></div></figure>
    <figure class="local"><video id="local-video" autoplay muted playsinline></video></figure>
  </div>
  <div class="controls">
    {e("button", "call.mic_off", 'type="button" id="toggle-mic"')}
    {e("button", "call.cam_off", 'type="button" id="toggle-cam"')}
    {e("button", "pat.leave", 'type="button" class="danger" id="leave"')}
  </div>
</section>
<section id="after" hidden>
  <p id="after-text"></p>
  {e("button", "pat.rejoin", 'type="button" class="primary" id="rejoin"')}
</section>
</main>
"""
    return _document(
        lang=lg,
        title="pat.title",
        body=body,
        page="patient",
        prefixes=("lang.", "common.", "pat.", "conn.", "call.mic", "call.cam", "gone."),
        scripts=("patient.js",),
        data={"consultation_type": consultation_type, "device_test": is_test},
    )


def _gone_html(state: str, lg: Lang) -> str:
    key = _GONE_KEY.get(state, "gone.not_found")
    help_key = "gone.not_found_help" if state == "not_found" else "gone.help"
    body = f"""
<header class="topbar slim">{_lang_toggle(lg)}</header>
<main class="patient gone" data-state="{html.escape(state)}">
  <h1>{_s(lg, key)}</h1>
  <p>{_s(lg, help_key)}</p>
</main>
"""
    return _document(lang=lg, title="gone.title", body=body, page="gone", prefixes=())
