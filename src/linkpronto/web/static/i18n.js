// Strings: the page embeds the table (both languages) from static/i18n.json as
// <script type="application/json" id="lp-i18n">; the server already rendered the chosen language.
// The language switches in place (no reload) and is kept in ?lang= of the address.

const table = JSON.parse(document.getElementById("lp-i18n")?.textContent || "{}");
let lang = document.documentElement.lang === "en" ? "en" : "pt-BR";
const listeners = [];

export function currentLang() {
  return lang;
}

/** Localized string; {name} placeholders are replaced from vars. */
export function t(key, vars) {
  let s = (table[lang] && table[lang][key]) ?? (table["pt-BR"] && table["pt-BR"][key]) ?? key;
  if (vars) {
    for (const [k, v] of Object.entries(vars)) s = s.split(`{${k}}`).join(String(v));
  }
  return s;
}

/** Re-render every element that carries data-i18n / data-i18n-aria / data-i18n-placeholder. */
export function applyI18n(root = document) {
  for (const el of root.querySelectorAll("[data-i18n]")) {
    const vars = el.dataset.i18nVars ? JSON.parse(el.dataset.i18nVars) : undefined;
    el.textContent = t(el.dataset.i18n, vars);
  }
  for (const el of root.querySelectorAll("[data-i18n-aria]")) el.setAttribute("aria-label", t(el.dataset.i18nAria));
  for (const el of root.querySelectorAll("[data-i18n-placeholder]")) el.placeholder = t(el.dataset.i18nPlaceholder);
}

export function setLang(next) {
  lang = next === "en" ? "en" : "pt-BR";
  document.documentElement.lang = lang;
  const url = new URL(location.href);
  url.searchParams.set("lang", lang);
  history.replaceState(null, "", url);
  applyI18n();
  const toggle = document.getElementById("lang-toggle");
  if (toggle) {
    const other = lang === "en" ? "pt-BR" : "en";
    toggle.setAttribute("href", `?lang=${other}`);
    toggle.setAttribute("hreflang", other);
    toggle.setAttribute("lang", other);
    toggle.title = t("lang.switch_label");
  }
  for (const cb of listeners) cb(lang);
}

export function onLangChange(cb) {
  listeners.push(cb);
}

/** Wire the header's language link to switch in place. */
export function initLangToggle() {
  const toggle = document.getElementById("lang-toggle");
  if (!toggle) return;
  toggle.addEventListener("click", (ev) => {
    ev.preventDefault();
    setLang(lang === "en" ? "pt-BR" : "en");
  });
}

/** Same-origin API URL with ?lang=en when English is chosen (the server localizes messages). */
export function apiUrl(path) {
  const url = new URL(path, location.origin);
  if (lang === "en") url.searchParams.set("lang", "en");
  return url.pathname + url.search;
}

// The dashboard session's origin-bound half (web/session.py): the login redirect puts it in the
// fragment (never sent to a server); it is kept in this origin's storage (scheme + host + port, so no
// page on another port can read it) and sent as a header on every admin call. The cookie alone is
// refused. localStorage rather than sessionStorage: the call page may open in a new tab.
const SESSION_KEY = "linkpronto-session";

function takeSessionFragment() {
  const m = /(?:^#|&)lp-session=([A-Za-z0-9_-]+)/.exec(location.hash);
  if (!m) return;
  try {
    localStorage.setItem(SESSION_KEY, m[1]);
  } catch (_err) {
    // storage disabled: this page keeps the secret in memory below
  }
  sessionFallback = m[1];
  history.replaceState(null, "", location.pathname + location.search);
}
let sessionFallback = "";
takeSessionFragment();

/** Headers every admin API call carries (besides the cookie). */
export function sessionHeaders(extra = {}) {
  let secret = sessionFallback;
  try {
    secret = localStorage.getItem(SESSION_KEY) || secret;
  } catch (_err) {
    // storage disabled
  }
  return secret ? { ...extra, "X-Linkpronto-Session": secret } : { ...extra };
}

/** Log out: the server ends the session; this origin forgets its secret. */
export async function logout() {
  try {
    await fetch("/api/logout", { method: "POST", headers: sessionHeaders(), credentials: "same-origin", cache: "no-store" });
  } finally {
    try {
      localStorage.removeItem(SESSION_KEY);
    } catch (_err) {
      // storage disabled
    }
    sessionFallback = "";
  }
}

export function formatTime(iso, withDate = true) {
  if (!iso) return t("common.none");
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return iso;
  const opts = withDate ? { dateStyle: "short", timeStyle: "short" } : { timeStyle: "medium" };
  return new Intl.DateTimeFormat(lang, opts).format(d);
}

/** Tiny DOM builder: h("p", {class: "x", text: "..."}, child, ...). */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "text") el.textContent = v;
    else if (k === "class") el.className = v;
    else if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children) if (c !== null && c !== undefined) el.append(c);
  return el;
}

/** Problem box: message + "How to fix:" + fix. */
export function problemBox(message, fix) {
  const box = h("div", {}, h("p", { class: "msg" }, h("strong", { text: message })));
  if (fix) box.append(h("p", { class: "fix" }, h("span", { text: t("common.fix") + " " }), fix));
  return box;
}

export async function copyText(text) {
  try {
    await navigator.clipboard.writeText(text);
    return true;
  } catch (_err) {
    return false; // clipboard API refused (insecure context or permission): caller shows a hint
  }
}
