// Admin dashboard: live status (SSE over fetch), "Gerar link", device test, links table.
// API calls are authorised by the dashboard's session cookie (HttpOnly, SameSite=Strict; set by the
// one-time URL `linkpronto up` prints), sent with credentials "same-origin"; the status stream is read
// with fetch() too.

import { apiUrl, applyI18n, copyText, formatTime, h, initLangToggle, onLangChange, problemBox, t } from "./i18n.js";
import { initPresence, onPresence, presencePill, rerenderPresence, syncLinks } from "./presence.js";

const $ = (id) => document.getElementById(id);
const STREAM_IDLE_MS = 40000; // the server sends a status at least every 15 s
const BACKOFF_MAX_MS = 15000;
const POLL_FALLBACK_MS = 3000; // re-GET a preparing link if no status event came in that time
const DEVTEST_POLL_MS = 2000;
const LINKS_REFRESH_MS = 10000;
const DEVICE_TEST = { professional_id: "device-test", consultation_type: "teste-de-dispositivo" };

let status = null;
const statusListeners = new Set();

// --------------------------------------------------------------------------------------------- api

async function api(method, path, body) {
  const headers = { Accept: "application/json" };
  if (body !== undefined) headers["content-type"] = "application/json";
  const res = await fetch(apiUrl(path), {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    credentials: "same-origin",
    cache: "no-store",
  });
  let json = null;
  try {
    json = await res.json();
  } catch (_err) {
    json = null; // empty or non-JSON body
  }
  return { res, json };
}

function errorOf(res, json) {
  if (json && json.error) return json.error;
  if (res && res.status === 422 && json && Array.isArray(json.detail)) {
    const fields = json.detail.map((d) => `${(d.loc || []).slice(1).join(".") || "?"}: ${d.msg}`).join("; ");
    return { code: "INVALID", message: t("dash.gen.invalid", { fields }), fix: null };
  }
  if (res) return { code: `HTTP_${res.status}`, message: t("common.network_error"), fix: t("common.network_fix") };
  return { code: "NETWORK", message: t("common.network_error"), fix: t("common.network_fix") };
}

// -------------------------------------------------------------------------------------- SSE stream

function sseParser(onEvent) {
  let buf = "";
  let data = [];
  let event = "message";
  return (chunk) => {
    buf += chunk;
    for (;;) {
      const m = /\r\n|\r|\n/.exec(buf);
      if (!m) break;
      if (m[0] === "\r" && m.index === buf.length - 1) break; // "\r\n" may be split across chunks
      const line = buf.slice(0, m.index);
      buf = buf.slice(m.index + m[0].length);
      if (line === "") {
        if (data.length) onEvent(event, data.join("\n"));
        data = [];
        event = "message";
      } else if (!line.startsWith(":")) {
        const c = line.indexOf(":");
        const field = c < 0 ? line : line.slice(0, c);
        let value = c < 0 ? "" : line.slice(c + 1);
        if (value.startsWith(" ")) value = value.slice(1);
        if (field === "data") data.push(value);
        else if (field === "event") event = value;
      }
    }
  };
}

let streamCtrl = null;

async function runStatusStream() {
  let delay = 1000;
  for (;;) {
    const ctrl = new AbortController();
    streamCtrl = ctrl;
    let idle;
    const kick = () => {
      clearTimeout(idle);
      idle = setTimeout(() => ctrl.abort(), STREAM_IDLE_MS);
    };
    try {
      kick();
      const res = await fetch(apiUrl("/api/status/stream"), {
        headers: { Accept: "text/event-stream" },
        credentials: "same-origin",
        signal: ctrl.signal,
        cache: "no-store",
      });
      if (!res.ok || !res.body) throw new Error(`HTTP ${res.status}`);
      const parse = sseParser((event, payload) => {
        if (event === "presence") return presenceEvent(payload);
        if (event !== "status") return;
        try {
          onStatus(JSON.parse(payload));
        } catch (err) {
          console.warn("bad status event", err);
        }
      });
      const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        kick();
        if (delay !== 1000 || !$("stream-note").hidden) setStreamNote(null);
        delay = 1000;
        parse(value);
      }
    } catch (_err) {
      // network error, abort (idle watchdog or language change) or HTTP error: reconnect below
    } finally {
      clearTimeout(idle);
    }
    if (ctrl.signal.aborted && ctrl.reason === "lang") continue; // reconnect at once, new language
    setStreamNote(Math.round(delay / 1000));
    await new Promise((r) => setTimeout(r, delay));
    delay = Math.min(delay * 2, BACKOFF_MAX_MS);
  }
}

function presenceEvent(payload) {
  try {
    const ev = JSON.parse(payload);
    onPresence(ev);
    const link = links.find((l) => l.id === ev.link_id);
    if (link) {
      Object.assign(link, { presence: ev.presence, presence_since: ev.presence_since, waiting_name: ev.waiting_name });
      renderLinks();
    }
  } catch (err) {
    console.warn("bad presence event", err);
  }
}

function setStreamNote(seconds) {
  const el = $("stream-note");
  if (seconds === null) {
    el.hidden = true;
    el.textContent = "";
  } else {
    el.hidden = false;
    el.textContent = t("dash.stream_lost", { s: seconds });
  }
}

// ------------------------------------------------------------------------------------------ status

function onStatus(s) {
  status = s;
  renderStatus();
  for (const cb of statusListeners) cb(s);
}

const UP = new Set(["ready", "adopted", "external"]);
const DOWN = new Set(["failed", "unhealthy"]);

function stepItem(name, ok, extra = {}) {
  const mark = ok === "true" ? "✓" : ok === "false" ? "✗" : ok === "skip" ? "–" : "…";
  const li = h(
    "li",
    { "data-ok": ok, "data-name": name },
    h("span", { class: "mark", "aria-hidden": "true", text: mark }),
    h("strong", { text: name }),
    extra.state ? h("span", { text: ` — ${extra.state}` }) : null,
    extra.duration !== undefined && extra.duration !== null
      ? h("span", { class: "dur", text: ` (${Math.round(extra.duration)} ms)` })
      : null,
  );
  if (extra.detail) li.append(h("span", { class: "detail help", text: extra.detail }));
  if (extra.fix && ok === "false") li.append(h("span", { class: "fix", text: `${t("common.fix")} ${extra.fix}` }));
  return li;
}

function componentItems(s) {
  return Object.entries(s.components || {}).map(([name, c]) => {
    const ok = UP.has(c.state) ? "true" : DOWN.has(c.state) ? "false" : "wait";
    // A component that is down says why and how to fix it (its `error` problem), like a failed check.
    const fix = c.error && c.error.fix ? c.error.fix : null;
    const li = stepItem(name, ok, { state: t(`dash.part.${c.state}`), detail: c.detail, fix });
    // When the user's app is down, its last lines of output say why (compile error, missing env...).
    if (name === "app" && ok === "false") li.append(appLogTail());
    return li;
  });
}

const APP_LOG_LINES = 20;
let appLogText = "";
let appLogFetching = false;

function appLogTail() {
  const pre = h("pre", { class: "log-tail", id: "app-log-tail", text: appLogText });
  if (!appLogFetching) {
    appLogFetching = true;
    api("GET", `/api/logs?component=app&n=${APP_LOG_LINES}`)
      .then(({ res, json }) => {
        if (!res.ok || !json || !Array.isArray(json.lines)) return;
        appLogText = json.lines.map((l) => l.line).join("\n");
        const node = document.getElementById("app-log-tail");
        if (node) node.textContent = appLogText;
      })
      .catch(() => {})
      .finally(() => {
        appLogFetching = false;
      });
  }
  return pre;
}

function checkItems(s) {
  const checks = (s.verification && s.verification.checks) || [];
  // The page rung that could not run (no browser…) is "not checked", neither passed nor failed.
  const skipped = (c) => c.name === "page" && !c.required && c.ok;
  return checks.map((c) =>
    stepItem(c.name, skipped(c) ? "skip" : c.ok ? "true" : "false", {
      duration: skipped(c) ? null : c.duration_ms,
      detail: c.detail,
      fix: skipped(c) ? null : c.fix,
    }),
  );
}

function mediaDetail(m) {
  // The media rung's measurement (or the configuration's judgement, said so) and the pair it used.
  if (!m) return "";
  const how = t(m.measured ? "dash.media.measured" : "dash.media.not_measured");
  return [m.detail || "", reachUnknown(m) ? "" : `(${how})`].filter(Boolean).join(" ");
}

function reachUnknown(m) {
  return !m.reach || m.reach === "unknown";
}

function pairWords(c, rtt) {
  const kind = { host: "direct", srflx: "nat", prflx: "nat", relay: "relay" }[c && c.type] || "direct";
  const proto = c && c.protocol ? c.protocol.toUpperCase() : "";
  const words = [proto, t(`dash.pmedia.${kind}`)].filter(Boolean).join(" ");
  return typeof rtt === "number" ? `${words}, ${rtt} ms` : words;
}

function patientMediaLine(pm) {
  // "Vídeo do paciente: passou (UDP direto, 38 ms)" / "não passou — o celular não alcança o servidor de vídeo"
  if (!pm || pm.status === "skipped") return null;
  const reasons = ["ice", "no_packets", "signal", "black", "error"];
  const text = pm.ok
    ? t("dash.pmedia.passed", { path: pairWords(pm.candidate, pm.rtt_ms) })
    : t(`dash.pmedia.fail.${reasons.includes(pm.reason) ? pm.reason : "error"}`);
  const line = h("span", { class: pm.ok ? "ok-text" : "bad-text", "data-patient-media": pm.ok ? "passed" : "failed",
    text: `${t("dash.pmedia.label")}: ${text}` });
  if (pm.candidate && pm.candidate.address) line.title = pm.candidate.address;
  if (pm.ok || pm.reason === "black") return line;
  return h("span", {}, line, h("br"), h("span", { class: "help", "data-patient-media-fix": "", text: t("dash.pmedia.fix") }));
}

function renderStatus() {
  const s = status;
  if (!s) return;
  const badge = $("stack-state");
  const known = ["stopped", "starting", "verifying", "ready", "degraded", "failed"].includes(s.state);
  badge.dataset.state = known ? s.state : "unknown";
  badge.textContent = t(`dash.state.${known ? s.state : "unknown"}`);
  $("public-url").textContent = s.public_url || t("common.none");
  $("tunnel-provider").textContent = (s.tunnel && s.tunnel.provider) || t("common.none");
  $("tunnel-tradeoff").textContent = (s.tunnel && s.tunnel.tradeoff) || "";
  const reach = (s.media && s.media.reach) || "unknown";
  const r = ["same-network", "anywhere", "none", "unknown"].includes(reach) ? reach : "unknown";
  $("media-reach").textContent = t(`dash.media.${r}`);
  $("media-reach").dataset.reach = r;
  $("media-reach").dataset.measured = String(Boolean(s.media && s.media.measured));
  $("media-help").textContent = t(`dash.media.${r}_help`);
  $("media-detail").textContent = mediaDetail(s.media);
  // The same problem can arrive twice (a component's error and the tunnel's last error): show it once.
  const seen = new Set();
  const problems = (s.problems || []).filter((p) => {
    const key = `${p.code}\u0000${p.message}\u0000${p.fix || ""}`;
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
  $("problems-h").hidden = problems.length === 0;
  $("problems").replaceChildren(
    ...problems.map((p) => h("li", { "data-code": p.code }, problemBox(p.message, p.fix))),
  );
  $("components").replaceChildren(...componentItems(s));
  const items = checkItems(s);
  $("checks").replaceChildren(...(items.length ? items : [h("li", { text: t("dash.status.no_checks") })]));
  const age = s.verification && s.verification.age_s;
  $("checked-at").textContent = typeof age === "number" ? t("dash.status.checked", { s: Math.round(age) }) : "";
}

// ---------------------------------------------------------------------------- link creation (shared)

function insertSvg(box, svgText) {
  // The HTML parser puts <svg> in the SVG namespace even without xmlns (segno's inline SVG has none).
  const doc = new DOMParser().parseFromString(svgText, "text/html");
  const svg = doc.body.querySelector("svg");
  if (!svg) return;
  for (const bad of svg.querySelectorAll("script, foreignObject")) bad.remove();
  for (const el of [svg, ...svg.querySelectorAll("*")]) {
    for (const a of [...el.attributes]) if (a.name.toLowerCase().startsWith("on")) el.removeAttribute(a.name);
  }
  svg.setAttribute("aria-hidden", "true");
  const w = svg.getAttribute("width");
  const hgt = svg.getAttribute("height");
  if (!svg.hasAttribute("viewBox") && w && hgt) svg.setAttribute("viewBox", `0 0 ${parseFloat(w)} ${parseFloat(hgt)}`);
  box.replaceChildren(document.importNode(svg, true));
}

/** The link's QR: inline `qr_svg` markup, or fetched from `qr_svg_url` (admin API, needs our header). */
function qrElement(link, label) {
  const box = h("div", { class: "qr", role: "img", "aria-label": label });
  if (link.qr_svg) {
    insertSvg(box, link.qr_svg);
  } else if (link.qr_svg_url) {
    fetch(apiUrl(link.qr_svg_url), { credentials: "same-origin", cache: "no-store" })
      .then((res) => (res.ok ? res.text() : Promise.reject(new Error(`HTTP ${res.status}`))))
      .then((text) => insertSvg(box, text))
      .catch(() => box.replaceChildren(h("span", { class: "help", text: t("common.network_error") })));
  }
  return box;
}

function copyRow(url, labelKey) {
  const id = `u${Math.random().toString(36).slice(2, 8)}`;
  const input = h("input", { id, readonly: true, value: url });
  const note = h("span", { class: "help", role: "status", "aria-live": "polite" });
  const btn = h("button", { type: "button", class: "copy", "data-i18n": "common.copy", text: t("common.copy") });
  btn.addEventListener("click", async () => {
    const ok = await copyText(url);
    if (!ok) {
      input.select();
    }
    note.textContent = ok ? t("common.copied") : t("common.copy_failed");
  });
  return h(
    "div",
    {},
    h("label", { for: id, "data-i18n": labelKey, text: t(labelKey) }),
    h("div", { class: "copy-row" }, input, btn),
    note,
  );
}

/**
 * One link being created: POST, then preparing (steps from the status stream; the link is re-read on
 * each status event, with a slow fallback timer), then ready or error. `view` renders each state.
 */
class LinkFlow {
  constructor(box, body, view) {
    this.box = box;
    this.body = body;
    this.view = view;
    this.link = null;
    this.location = null;
    this.stopped = false;
    this.inflight = false;
    this.timer = null;
    this.onStatus = () => this.refresh();
  }

  async start() {
    this.view.preparing(this);
    // The server holds the POST while the stack prepares (wait_s): keep the steps ticking meanwhile.
    const tick = () => {
      if (!this.stopped) this.view.preparing(this);
    };
    statusListeners.add(tick);
    let res;
    let json;
    try {
      ({ res, json } = await api("POST", "/api/consultation-links", this.body));
    } catch (_err) {
      if (!this.stopped) this.view.error(this, errorOf(null, null));
      return;
    } finally {
      statusListeners.delete(tick);
    }
    if (this.stopped) return; // a newer "Gerar link" replaced this one while the POST was pending
    if (res.status === 201 && json) return this.settle(json);
    if (res.status === 202 && json) {
      this.link = json;
      const loc = res.headers.get("Location") || `/api/consultation-links/${encodeURIComponent(json.id)}`;
      const u = new URL(loc, location.origin);
      this.location = u.pathname + u.search;
      statusListeners.add(this.onStatus);
      this.arm();
      this.view.preparing(this);
      return;
    }
    this.view.error(this, errorOf(res, json));
  }

  arm() {
    clearTimeout(this.timer);
    if (!this.stopped) this.timer = setTimeout(() => this.refresh(), POLL_FALLBACK_MS);
  }

  async refresh() {
    if (this.stopped || !this.location || this.inflight) return;
    this.inflight = true;
    try {
      const { res, json } = await api("GET", this.location);
      if (res.ok && json) return this.settle(json);
    } catch (_err) {
      // transient: the next status event or the fallback timer tries again
    } finally {
      this.inflight = false;
    }
    this.arm();
  }

  settle(link) {
    this.link = link;
    if (link.status === "ready") {
      this.finish();
      this.view.ready(this, link);
    } else if (link.status === "preparing") {
      if (status && status.state === "failed") {
        const p = (status.problems || [])[0];
        this.view.error(this, p || { message: t("dash.gen.failed_link"), fix: null }, true);
      } else {
        this.view.preparing(this);
      }
      this.arm();
    } else {
      this.finish();
      const failed = (link.checks || []).find((c) => !c.ok);
      this.view.error(this, failed ? { message: failed.detail || failed.name, fix: failed.fix } : {
        message: `${t("dash.gen.failed_link")} (${t(`dash.link_status.${link.status}`)})`,
        fix: null,
      });
    }
  }

  finish() {
    statusListeners.delete(this.onStatus);
    clearTimeout(this.timer);
  }

  stop() {
    this.stopped = true;
    this.finish();
  }
}

function preparingView(box) {
  box.className = "result preparing";
  box.hidden = false;
  const steps = status ? [...componentItems(status), ...checkItems(status)] : [];
  box.replaceChildren(
    h("p", { "data-i18n": "dash.gen.preparing", text: t("dash.gen.preparing") }),
    h("ul", { class: "steps", id: `${box.id}-steps` }, ...steps),
  );
}

function errorView(box, err, retry, keepWaiting) {
  box.className = "result error";
  box.hidden = false;
  const retryBtn = h("button", { type: "button", class: "primary", text: t("common.retry") });
  retryBtn.addEventListener("click", retry);
  box.replaceChildren(
    h("h3", { text: t("dash.gen.error") }),
    problemBox(err.message || t("dash.gen.failed_link"), err.fix),
    err.code ? h("p", { class: "help code", text: err.code }) : null,
    keepWaiting ? h("p", { class: "help", text: t("dash.gen.retry_hint") }) : null,
    h("div", { class: "actions" }, retryBtn),
  );
}

// -------------------------------------------------------------------------------------- "Gerar link"

let genFlow = null;

function genView() {
  const box = $("gen-result");
  return {
    preparing: () => preparingView(box),
    error: (flow, err, keepWaiting) => errorView(box, err, () => submitGen(), keepWaiting),
    ready: (flow, link) => {
      box.className = "result ready";
      box.hidden = false;
      const wa = link.whatsapp_url
        ? h("a", { class: "button whatsapp", href: link.whatsapp_url, target: "_blank", rel: "noopener noreferrer", text: t("dash.gen.whatsapp") })
        : null;
      const call = h("a", { class: "button", href: `/call/${encodeURIComponent(link.id)}${location.search}`, text: t("dash.gen.open_call") });
      const sameNet = status && status.media && status.media.reach === "same-network";
      box.replaceChildren(
        h("h3", { text: `✓ ${t("dash.gen.ready")}` }),
        copyRow(link.url, "dash.gen.link_label"),
        qrElement(link, t("dash.gen.qr_label")),
        h("div", { class: "actions" }, wa, call),
        h("p", { class: "help expires", text: t("dash.gen.expires", { t: formatTime(link.expires_at) }) }),
        link.verified_at ? h("p", { class: "help", text: t("dash.gen.verified", { t: formatTime(link.verified_at, false) }) }) : null,
        sameNet ? h("p", { class: "flag", text: t("dash.gen.media_warn") }) : null,
      );
      loadLinks();
    },
  };
}

function readForm() {
  const get = (id) => $(id).value.trim();
  const body = { professional_id: get("professional_id") };
  if (get("client_id")) body.client_id = get("client_id");
  if (get("consultation_type")) body.consultation_type = get("consultation_type");
  return body;
}

async function submitGen() {
  const body = readForm();
  if (!body.professional_id) {
    errorView($("gen-result"), { message: t("dash.gen.required"), fix: null }, () => submitGen());
    $("professional_id").focus();
    return;
  }
  if (genFlow) genFlow.stop();
  const btn = $("gen-submit");
  btn.disabled = true;
  genFlow = new LinkFlow($("gen-result"), body, genView());
  try {
    await genFlow.start();
  } finally {
    btn.disabled = false;
  }
}

// ------------------------------------------------------------------------------------- device test

let devFlow = null;
let devTimer = null;

function deviceCheckOf(link) {
  const dc = link && link.device_check;
  if (!dc) return null;
  return dc.result && typeof dc.result === "object" ? { ...dc.result, ...dc } : dc;
}

function deviceSummary(dc) {
  const failed = (dc.checks || []).filter((c) => c.status === "failed").map((c) => t(`pat.check.${c.name}`));
  return { ok: Boolean(dc.ok), failed };
}

function devView() {
  const box = $("devtest-result");
  return {
    preparing: () => preparingView(box),
    error: (flow, err, keepWaiting) => errorView(box, err, () => startDevTest(), keepWaiting),
    ready: (flow, link) => {
      box.className = "result ready";
      box.hidden = false;
      const stop = h("button", { type: "button", id: "devtest-stop", text: t("dash.devtest.stop") });
      stop.addEventListener("click", () => stopDevTest(true));
      box.replaceChildren(
        qrElement(link, t("dash.gen.qr_label")),
        copyRow(link.url, "dash.gen.link_label"),
        h("div", { id: "devtest-outcome", role: "status", "aria-live": "polite" },
          h("p", { class: "help", text: t("dash.devtest.waiting") })),
        h("div", { class: "actions" }, stop),
      );
      pollDevTest();
    },
  };
}

function renderDevOutcome(link) {
  const dc = deviceCheckOf(link);
  const out = $("devtest-outcome");
  if (!dc || !out) return;
  const sum = deviceSummary(dc);
  const devState = (v) => t(`dash.device.${["ok", "denied", "missing"].includes(v) ? v : "missing"}`);
  out.dataset.ok = String(sum.ok);
  out.replaceChildren(
    h("p", { class: sum.ok ? "ok-text" : "bad-text" }, h("strong", { text: sum.ok ? `✓ ${t("dash.devtest.ok")}` : `✗ ${t("dash.devtest.fail")}` })),
    sum.failed.length ? h("ul", {}, ...sum.failed.map((n) => h("li", { text: n }))) : null,
    h("p", { class: "help", text: `${t("dash.devtest.camera", { v: devState(dc.camera) })} · ${t("dash.devtest.microphone", { v: devState(dc.microphone) })}` }),
    dc.user_agent ? h("p", { class: "help", text: dc.user_agent }) : null,
  );
}

async function pollDevTest() {
  clearTimeout(devTimer);
  if (!devFlow || devFlow.stopped || !devFlow.link) return;
  try {
    const { res, json } = await api("GET", `/api/consultation-links/${encodeURIComponent(devFlow.link.id)}`);
    if (res.ok && json) renderDevOutcome(json);
  } catch (_err) {
    // try again on the next tick
  }
  if (devFlow && !devFlow.stopped) devTimer = setTimeout(pollDevTest, DEVTEST_POLL_MS);
}

async function startDevTest() {
  await stopDevTest(false);
  devFlow = new LinkFlow($("devtest-result"), { ...DEVICE_TEST }, devView());
  await devFlow.start();
}

async function stopDevTest(revoke) {
  clearTimeout(devTimer);
  if (!devFlow) return;
  const flow = devFlow;
  devFlow = null;
  flow.stop();
  if (revoke) {
    if (flow.link) await api("DELETE", `/api/consultation-links/${encodeURIComponent(flow.link.id)}`).catch(() => {});
    $("devtest-result").hidden = true;
    $("devtest-result").replaceChildren();
    loadLinks();
  }
}

// -------------------------------------------------------------------------------------- links table

let links = [];
let linksLoading = false;
let lastLinksLoad = 0;

async function loadLinks() {
  if (linksLoading) return;
  linksLoading = true;
  try {
    const { res, json } = await api("GET", "/api/consultation-links");
    if (res.ok && json && Array.isArray(json.items)) {
      links = json.items;
      syncLinks(links);
      renderLinks();
    }
  } catch (_err) {
    // the stream note already says the server is unreachable
  } finally {
    linksLoading = false;
    lastLinksLoad = Date.now();
  }
}

function deviceCell(link) {
  const dc = deviceCheckOf(link);
  if (!dc) return h("td", { "data-device": "none", text: t("dash.links.device_none") });
  const sum = deviceSummary(dc);
  const cell = h("td", {
    "data-device": sum.ok ? "ok" : "fail",
    class: sum.ok ? "ok-text" : "bad-text",
    title: sum.failed.join(", "),
    text: sum.ok ? `✓ ${t("dash.links.device_ok")}` : `✗ ${t("dash.links.device_fail")}${sum.failed.length ? `: ${sum.failed.join(", ")}` : ""}`,
  });
  const media = patientMediaLine(dc.media);
  if (media) cell.append(h("br"), media);
  return cell;
}

function renderLinks() {
  const body = $("links-body");
  if (!links.length) {
    body.replaceChildren(h("tr", {}, h("td", { colspan: "7", text: t("dash.links.empty") })));
    return;
  }
  body.replaceChildren(
    ...links.map((link) => {
      const who = h("td", {}, h("span", { text: link.professional_id || "" }),
        link.client_id ? h("span", { class: "help", text: ` / ${link.client_id}` }) : null);
      const st = h("td", {}, h("span", { class: "status-pill", "data-status": link.status, text: t(`dash.link_status.${link.status}`) }));
      const pill = presencePill(link);
      if (pill) st.append(" ", pill);
      if (link.sent_with_old_address && link.status === "ready") {
        st.append(h("br"), h("span", { class: "flag", "data-flag": "resend", text: `⚠ ${t("dash.links.resend")}` }));
      }
      const uses = link.max_uses ? `${link.uses}/${link.max_uses}` : String(link.uses ?? 0);
      const actions = h("td", { class: "actions" });
      if (link.url && link.status === "ready") {
        const copy = h("button", { type: "button", class: "small", "data-action": "copy", text: t("dash.links.copy") });
        copy.addEventListener("click", async () => {
          const ok = await copyText(link.url);
          $("links-note").textContent = ok ? t("common.copied") : t("common.copy_failed");
        });
        actions.append(copy, h("a", { class: "button small", href: `/call/${encodeURIComponent(link.id)}${location.search}`, text: t("dash.links.call") }));
      }
      if (link.status === "ready" || link.status === "preparing") {
        const rv = h("button", { type: "button", class: "small danger", "data-action": "revoke", text: t("dash.links.revoke") });
        rv.addEventListener("click", () => revoke(link));
        actions.append(rv);
      }
      return h(
        "tr",
        { "data-id": link.id },
        who,
        h("td", { text: link.consultation_type || t("common.none") }),
        st,
        h("td", { text: formatTime(link.expires_at) }),
        h("td", { text: uses }),
        deviceCell(link),
        actions,
      );
    }),
  );
}

function confirmDialog(titleKey, textKey, yesKey) {
  const dlg = $("confirm");
  $("confirm-h").textContent = t(titleKey);
  $("confirm-text").textContent = t(textKey);
  $("confirm-yes").textContent = t(yesKey);
  $("confirm-no").textContent = t("common.cancel");
  dlg.returnValue = "";
  return new Promise((resolve) => {
    dlg.addEventListener("close", () => resolve(dlg.returnValue === "ok"), { once: true });
    dlg.showModal();
    $("confirm-no").focus();
  });
}

async function revoke(link) {
  const yes = await confirmDialog("dash.links.confirm_title", "dash.links.confirm_text", "dash.links.confirm_yes");
  if (!yes) return;
  try {
    const { res, json } = await api("DELETE", `/api/consultation-links/${encodeURIComponent(link.id)}`);
    if (res.ok) {
      $("links-note").textContent = t("dash.links.revoked");
    } else {
      const err = errorOf(res, json);
      $("links-note").textContent = `${err.message}${err.fix ? ` — ${err.fix}` : ""}`;
    }
  } catch (_err) {
    $("links-note").textContent = t("common.network_error");
  }
  await loadLinks();
}

// -------------------------------------------------------------------------------------------- init

function init() {
  initLangToggle();
  initPresence();
  onLangChange(() => {
    applyI18n();
    renderStatus();
    renderLinks();
    rerenderPresence();
    if (streamCtrl) streamCtrl.abort("lang"); // reconnect so the server localizes messages
  });
  $("gen-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    submitGen();
  });
  $("devtest-start").addEventListener("click", () => startDevTest());
  $("links-refresh").addEventListener("click", () => loadLinks());
  statusListeners.add(() => {
    if (Date.now() - lastLinksLoad > 3000) loadLinks();
  });
  setInterval(() => {
    if (document.visibilityState === "visible") loadLinks();
  }, LINKS_REFRESH_MS);
  loadLinks();
  runStatusStream();
}

init();
