// Who is in the room (linkpronto.events): the "Maria is waiting" notice on the dashboard, a short beep
// (Web Audio, no sound file) the professional can turn off (remembered in localStorage), and a presence
// pill per link. Fed by `event: presence` on the status stream and by the links list.

import { h, t } from "./i18n.js";

const $ = (id) => document.getElementById(id);
const SOUND_KEY = "linkpronto.presenceSound"; // "off" when the professional turned the sound off
const waiting = new Map(); // link id -> {name, since}
const streamed = new Map(); // link id -> {at: ms, ev}: the stream's last word about that link
const STREAM_WINS_MS = 5000; // a links list fetched meanwhile may predate what the stream said
let audio = null;

export function soundOn() {
  try {
    return localStorage.getItem(SOUND_KEY) !== "off";
  } catch (_err) {
    return true; // storage blocked: keep the default
  }
}

function setSound(on) {
  try {
    localStorage.setItem(SOUND_KEY, on ? "on" : "off");
  } catch (_err) {
    // storage blocked: the checkbox still works for this page
  }
}

/** A short two-tone beep; silent (and harmless) where audio is not allowed yet. */
export function beep() {
  try {
    audio = audio || new (window.AudioContext || window.webkitAudioContext)();
    if (audio.state === "suspended") audio.resume();
    const now = audio.currentTime;
    const gain = audio.createGain();
    gain.gain.setValueAtTime(0.0001, now);
    gain.gain.exponentialRampToValueAtTime(0.2, now + 0.02);
    gain.gain.exponentialRampToValueAtTime(0.0001, now + 0.35);
    gain.connect(audio.destination);
    for (const [freq, at] of [[880, 0], [1175, 0.15]]) {
      const osc = audio.createOscillator();
      osc.type = "sine";
      osc.frequency.setValueAtTime(freq, now + at);
      osc.connect(gain);
      osc.start(now + at);
      osc.stop(now + at + 0.18);
    }
    document.body.dataset.beeps = String(Number(document.body.dataset.beeps || 0) + 1);
  } catch (_err) {
    // no Web Audio: the visual notice is enough
  }
}

function render() {
  const box = $("presence-notice");
  if (!box) return;
  const items = [...waiting.entries()].sort((a, b) => String(a[1].since).localeCompare(String(b[1].since)));
  box.hidden = items.length === 0;
  box.replaceChildren(
    ...items.map(([id, w]) =>
      w.kind === "media_aborted"
        ? h(
          "p",
          { class: "presence-media-aborted", "data-link": id },
          h("strong", { text: t("dash.presence.media_aborted", { name: w.name || t("dash.presence.patient") }) }),
          " ",
          h("span", { text: t("dash.presence.media_aborted_fix") }),
        )
        : h(
        "p",
        { class: "presence-waiting", "data-link": id },
        h("strong", { text: w.name ? t("dash.presence.waiting", { name: w.name }) : t("dash.presence.waiting_anon") }),
        " ",
        h("a", { class: "button small primary", href: `/call/${encodeURIComponent(id)}${location.search}`, text: t("dash.presence.join") }),
      ),
    ),
  );
}

/** One presence change from the status stream. */
export function onPresence(ev) {
  const was = waiting.has(ev.link_id);
  streamed.set(ev.link_id, { at: Date.now(), ev });
  if (ev.presence === "waiting") {
    waiting.set(ev.link_id, { name: ev.waiting_name, since: ev.presence_since });
    if (!was && soundOn()) beep();
  } else if (ev.presence === "media_aborted") {
    // The patient reached the room but the video never connected (LiveKit: participant_connection_aborted).
    waiting.set(ev.link_id, { kind: "media_aborted", name: ev.waiting_name, since: ev.presence_since });
  } else {
    waiting.delete(ev.link_id);
  }
  render();
}

/** The links list (GET): waiting links shown without a beep (a reload must not ring). What the stream
 * said in the last few seconds wins over the list (the request may have started before it); the
 * list's link objects are corrected in place, so call this before rendering them. */
export function syncLinks(links) {
  const now = Date.now();
  const fresh = (id) => now - ((streamed.get(id) || {}).at || 0) < STREAM_WINS_MS;
  const listed = new Set();
  for (const link of links) {
    if (fresh(link.id)) {
      const { ev } = streamed.get(link.id);
      Object.assign(link, { presence: ev.presence, presence_since: ev.presence_since, waiting_name: ev.waiting_name });
      continue;
    }
    if ((link.presence === "waiting" || link.presence === "media_aborted") && link.status !== "revoked") {
      listed.add(link.id);
      waiting.set(link.id, { kind: link.presence, name: link.waiting_name, since: link.presence_since });
    }
  }
  for (const id of [...waiting.keys()]) if (!listed.has(id) && !fresh(id)) waiting.delete(id);
  render();
}

/** The presence pill for a link's status cell (null when nobody is in the room). */
export function presencePill(link) {
  if (!link.presence) return null;
  const text = link.presence === "waiting" && link.waiting_name
    ? t("dash.presence.waiting", { name: link.waiting_name })
    : link.presence === "media_aborted"
      ? t("dash.presence.media_aborted", { name: link.waiting_name || t("dash.presence.patient") })
      : t(`dash.presence.${link.presence}`);
  return h("span", { class: "presence-pill", "data-presence": link.presence, text });
}

export function initPresence() {
  const toggle = $("presence-sound");
  if (toggle) {
    toggle.checked = soundOn();
    toggle.addEventListener("change", () => setSound(toggle.checked));
  }
  render();
}

export function rerenderPresence() {
  render();
}
