// The professional's call page (admin listener): joins the link's room with the host token.
// "Encerrar consulta" disconnects and offers to revoke the link.

import { apiUrl, applyI18n, copyText, formatTime, initLangToggle, onLangChange, problemBox, sessionHeaders, t } from "./i18n.js";
import { bindRoom, loadLivekit, prefetchLivekit, reconnectPolicy, showLocal, toggleDevice } from "./livekit.js";

const $ = (id) => document.getElementById(id);
const data = JSON.parse($("lp-data")?.textContent || "{}");
const linkPath = `/api/consultation-links/${encodeURIComponent(data.link_id || "")}`;
const CONNECT_TIMEOUT_MS = 30000;
let room = null;
let ending = false;
let link = null;

async function api(method, path) {
  const res = await fetch(apiUrl(path), { method, headers: sessionHeaders(), credentials: "same-origin", cache: "no-store" });
  let json = null;
  try {
    json = await res.json();
  } catch (_err) {
    json = null;
  }
  return { res, json };
}

function showError(err) {
  const box = $("call-error");
  box.replaceChildren(problemBox(err.message || t("conn.failed"), err.fix || t("conn.failed_fix")));
  box.hidden = false;
}

function note(key) {
  const el = $("call-note");
  el.dataset.i18n = key;
  el.textContent = t(key);
}

async function loadLink() {
  try {
    const { res, json } = await api("GET", linkPath);
    if (res.status === 404) {
      showError({ message: t("call.not_found"), fix: null });
      $("call-start").disabled = true;
      return;
    }
    if (!res.ok || !json) return;
    link = json;
    $("link-url").value = link.url || "";
    const parts = [t(`dash.link_status.${link.status}`)];
    if (link.consultation_type) parts.push(link.consultation_type);
    if (link.expires_at) parts.push(formatTime(link.expires_at));
    $("link-info").textContent = parts.join(" · ");
  } catch (_err) {
    showError({ message: t("common.network_error"), fix: t("common.network_fix") });
  }
}

function setPeerCaption(count) {
  const cap = $("remote-caption");
  const key = count > 0 ? "call.remote" : "call.waiting_patient";
  cap.dataset.i18n = key;
  cap.textContent = t(key);
}

async function start() {
  $("call-error").hidden = true;
  const btn = $("call-start");
  btn.disabled = true;
  try {
    const { res, json } = await api("POST", `${linkPath}/host-token`);
    if (!res.ok || !json) {
      showError((json && json.error) || { message: t("conn.failed"), fix: t("conn.failed_fix") });
      return;
    }
    const LK = await loadLivekit();
    ending = false;
    room = new LK.Room({ adaptiveStream: true, dynacast: true, reconnectPolicy: reconnectPolicy() });
    const setState = bindRoom(LK, room, {
      remoteBox: $("remote-video"),
      stateEl: $("conn-state"),
      onPeer: (n) => {
        setPeerCaption(n);
        if (n === 0 && !ending) note("conn.peer_left");
      },
      onDisconnected: () => {
        if (!ending) showControls(false);
      },
    });
    setState("connecting");
    let timer;
    try {
      await Promise.race([
        room.connect(json.livekit_url, json.access_token),
        new Promise((_, rej) => {
          timer = setTimeout(() => rej(new Error("connect timeout")), CONNECT_TIMEOUT_MS);
        }),
      ]);
    } finally {
      clearTimeout(timer);
    }
    setState("connected");
    showControls(true);
    setPeerCaption(room.remoteParticipants.size);
    try {
      await room.localParticipant.enableCameraAndMicrophone();
    } catch (err) {
      showError({ message: `${t("conn.failed")} (${err.name || err.message})`, fix: null });
    }
    const cam = room.localParticipant.getTrackPublication(LK.Track.Source.Camera);
    if (cam && cam.track) showLocal($("local-video"), cam.track.mediaStreamTrack);
  } catch (err) {
    if (room) room.disconnect().catch(() => {});
    room = null;
    const s = $("conn-state");
    s.dataset.state = "failed";
    s.textContent = t("conn.failed");
    showError({ message: `${t("conn.failed")} (${(err && err.message) || err})`, fix: t("conn.failed_fix") });
  } finally {
    btn.disabled = false;
  }
}

function showControls(inCall) {
  $("call-start").hidden = inCall;
  for (const id of ["toggle-mic", "toggle-cam", "call-end"]) $(id).hidden = !inCall;
}

async function end() {
  ending = true;
  if (room) await room.disconnect();
  room = null;
  showControls(false);
  showLocal($("local-video"), null);
  note("call.ended");
  if (!link || !["ready", "preparing"].includes(link.status)) return;
  const dlg = $("confirm");
  dlg.returnValue = "";
  const answer = await new Promise((resolve) => {
    dlg.addEventListener("close", () => resolve(dlg.returnValue), { once: true });
    dlg.showModal();
    $("confirm-no").focus();
  });
  if (answer === "ok") {
    const { res } = await api("DELETE", linkPath);
    if (res.ok) note("call.revoked");
    await loadLink();
  }
}

function toggle(kind) {
  if (room) toggleDevice(room, kind, $(kind === "mic" ? "toggle-mic" : "toggle-cam"));
}

function init() {
  initLangToggle();
  onLangChange(() => {
    applyI18n();
    loadLink();
  });
  $("call-start").addEventListener("click", () => start());
  $("call-end").addEventListener("click", () => end());
  $("toggle-mic").addEventListener("click", () => toggle("mic"));
  $("toggle-cam").addEventListener("click", () => toggle("cam"));
  $("link-copy").addEventListener("click", async () => {
    const ok = await copyText($("link-url").value);
    $("call-note").textContent = ok ? t("common.copied") : t("common.copy_failed");
  });
  window.addEventListener("pagehide", () => {
    if (room) room.disconnect();
  });
  loadLink();
  prefetchLivekit();
}

init();
