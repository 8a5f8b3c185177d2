// The patient's page: camera/mic preview with plain-language help, device check, then the call.
//
// Device check design: joining is a POST that mints a LiveKit token (and may count as one use of
// the link), so the page joins once, on "Entrar na consulta", and uses that token for
// livekit-client's ConnectionCheck *before* connecting the call (its checks open their own Room
// with the same identity, so they must not overlap the real call):
//   consultation link: websocket, WebRTC, TURN (a few seconds) -> POST result -> connect the call ->
//     a few seconds later the real call's own outbound RTP stats give publish_audio/publish_video ->
//     POST the completed result (the server keeps the latest);
//   device-test link ("teste-de-dispositivo"): the full ConnectionCheck, including livekit-client's
//     publish audio/video checks, and no call.

import { apiUrl, applyI18n, currentLang, h, initLangToggle, onLangChange, problemBox, t } from "./i18n.js";
import { bindRoom, loadLivekit, prefetchLivekit, reconnectPolicy, showLocal, toggleDevice } from "./livekit.js";

const $ = (id) => document.getElementById(id);
const data = JSON.parse($("lp-data")?.textContent || "{}");
const deviceTest = Boolean(data.device_test);
const token = decodeURIComponent(location.pathname.split("/").filter(Boolean).pop() || "");
const CHECK_TIMEOUT_MS = 20000;
const JOIN_TIMEOUT_MS = 20000;
const STATS_DELAY_MS = 4000;

const media = { stream: null, camera: "unknown", microphone: "unknown", error: null };
let meterStop = null;
let room = null;
let leaving = false;
let lastResult = null;
let mediaPending = Promise.resolve();
let mediaCheck = null; // the real WebRTC check's result (runMediaCheck), sent inside every device check
let mediaCheckRun = null;
let mediaProbe = null; // the probe Room while the check runs (a tap on "Entrar" aborts it)
let mediaAborted = false;
const MEDIA_CHECK_TIMEOUT_MS = 20000; // livekit-client's own peer-connection timeout is 15 s

// ------------------------------------------------------------------------------------ environment

function browserKind() {
  const ua = navigator.userAgent;
  const iOS = /iPhone|iPad|iPod/.test(ua) || (navigator.platform === "MacIntel" && navigator.maxTouchPoints > 1);
  if (iOS) return "safari_ios";
  if (/Android/i.test(ua)) return "chrome_android";
  return "desktop";
}

function inAppBrowser() {
  return /FBAN|FBAV|Instagram|Line\/|; wv\)|WhatsApp/i.test(navigator.userAgent);
}

function showEnvWarnings() {
  const box = $("env-warning");
  box.replaceChildren();
  if (!window.isSecureContext) box.append(problemBox(t("pat.insecure"), t("pat.insecure_fix")));
  else if (inAppBrowser()) box.append(h("p", { text: t("pat.inapp") }));
  box.hidden = box.childElementCount === 0;
}

// ------------------------------------------------------------------------------------------ media

function stopMedia() {
  if (meterStop) meterStop();
  meterStop = null;
  if (media.stream) for (const tr of media.stream.getTracks()) tr.stop();
  media.stream = null;
}

function classify(err) {
  const name = err && err.name;
  if (name === "NotAllowedError" || name === "SecurityError" || name === "PermissionDeniedError") return "denied";
  if (name === "NotFoundError" || name === "DevicesNotFoundError" || name === "OverconstrainedError") return "missing";
  if (name === "NotReadableError" || name === "TrackStartError" || name === "AbortError") return "busy";
  return "error";
}

async function tryGet(constraints) {
  try {
    return { stream: await navigator.mediaDevices.getUserMedia(constraints), error: null };
  } catch (err) {
    return { stream: null, error: err };
  }
}

function startMedia() {
  mediaPending = openMedia();
  return mediaPending;
}

async function openMedia() {
  stopMedia();
  $("media-help").hidden = true;
  $("enable-media").hidden = true;
  setMediaState("pat.asking");
  if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
    media.camera = media.microphone = window.isSecureContext ? "missing" : "denied";
    media.error = window.isSecureContext ? "unsupported" : "insecure";
    showMediaProblem(window.isSecureContext ? "unsupported" : "insecure");
    return;
  }
  const video = { facingMode: "user", width: { ideal: 640 }, height: { ideal: 480 } };
  const audio = { echoCancellation: true, noiseSuppression: true };
  let { stream, error } = await tryGet({ video, audio });
  if (!stream && classify(error) === "missing") {
    // Find out which one is missing and keep the other.
    const v = await tryGet({ video });
    const a = await tryGet({ audio });
    const tracks = [...(v.stream?.getTracks() || []), ...(a.stream?.getTracks() || [])];
    if (tracks.length) stream = new MediaStream(tracks);
    media.camera = v.stream ? "ok" : classify(v.error) === "denied" ? "denied" : "missing";
    media.microphone = a.stream ? "ok" : classify(a.error) === "denied" ? "denied" : "missing";
  } else if (stream) {
    media.camera = stream.getVideoTracks().length ? "ok" : "missing";
    media.microphone = stream.getAudioTracks().length ? "ok" : "missing";
  } else {
    const kind = classify(error);
    media.camera = media.microphone = kind === "denied" ? "denied" : "missing";
  }
  media.error = error ? error.name : null;
  media.stream = stream;
  if (stream) {
    const vt = stream.getVideoTracks()[0];
    if (vt) showLocal($("preview"), vt);
    const at = stream.getAudioTracks()[0];
    if (at) meterStop = startMeter(stream);
  }
  if (media.camera === "ok" && media.microphone === "ok") {
    setMediaState("pat.cam_ok", "pat.mic_ok");
  } else {
    setMediaState();
    showMediaProblem(classify(error) === "error" && media.camera !== "denied" ? "missing" : classify(error));
  }
}

function setMediaState(...keys) {
  const el = $("media-state");
  el.replaceChildren(...keys.map((k) => h("span", { "data-i18n": k, class: k.endsWith("_ok") ? "ok" : null, text: t(k) })));
  el.hidden = keys.length === 0;
}

function showMediaProblem(kind) {
  const box = $("media-help");
  box.replaceChildren();
  if (kind === "denied") {
    box.append(problemBox(t("pat.denied"), t(`pat.denied.${browserKind()}`)));
    box.dataset.kind = `denied-${browserKind()}`;
  } else if (kind === "missing") {
    box.append(problemBox(t("pat.missing"), t("pat.missing_fix")));
    box.dataset.kind = "missing";
  } else if (kind === "busy") {
    box.append(problemBox(t("pat.busy"), t("pat.busy_fix")));
    box.dataset.kind = "busy";
  } else if (kind === "insecure") {
    box.append(problemBox(t("pat.insecure"), t("pat.insecure_fix")));
    box.dataset.kind = "insecure";
  } else if (kind === "unsupported") {
    box.append(problemBox(t("pat.unsupported"), t("pat.unsupported_fix")));
    box.dataset.kind = "unsupported";
  } else {
    box.append(problemBox(t("pat.media_error"), t("pat.busy_fix")));
    box.dataset.kind = "error";
  }
  if (!deviceTest) box.append(h("p", { class: "help", text: t("pat.join_without") }));
  box.hidden = false;
  const btn = $("enable-media");
  btn.dataset.i18n = "common.retry";
  btn.textContent = t("common.retry");
  btn.hidden = false;
}

function startMeter(stream) {
  const Ctx = window.AudioContext || window.webkitAudioContext;
  if (!Ctx) return null;
  const ctx = new Ctx();
  const src = ctx.createMediaStreamSource(stream);
  const an = ctx.createAnalyser();
  an.fftSize = 512;
  src.connect(an);
  const buf = new Uint8Array(an.fftSize);
  const bar = $("mic-bar");
  const meter = bar.parentElement;
  let raf = 0;
  const tick = () => {
    an.getByteTimeDomainData(buf);
    let peak = 0;
    for (const v of buf) peak = Math.max(peak, Math.abs(v - 128));
    const pct = Math.min(100, Math.round((peak / 128) * 180));
    bar.style.width = `${pct}%`;
    meter.setAttribute("aria-valuenow", String(pct));
    raf = requestAnimationFrame(tick);
  };
  tick();
  if (ctx.state === "suspended") document.addEventListener("click", () => ctx.resume(), { once: true });
  return () => {
    cancelAnimationFrame(raf);
    ctx.close().catch(() => {});
    bar.style.width = "0";
  };
}

// ------------------------------------------------------------------------------------ device check

const STATUS_NAMES = ["idle", "running", "skipped", "success", "failed"];
const checks = []; // {name, status, message}

function renderChecks() {
  const list = $("checks");
  list.replaceChildren(
    ...checks.map((c) => {
      const ok = c.status === "success" || c.status === "skipped" ? "true" : c.status === "failed" ? "false" : "wait";
      const mark = ok === "true" ? "✓" : ok === "false" ? "✗" : "…";
      return h(
        "li",
        { "data-ok": ok, "data-check": c.name },
        h("span", { class: "mark", "aria-hidden": "true", text: mark }),
        h("span", { "data-i18n": `pat.check.${c.name}`, text: t(`pat.check.${c.name}`) }),
        " — ",
        h("span", { class: "state", "data-i18n": `pat.check.${c.status}`, text: t(`pat.check.${c.status}`) }),
      );
    }),
  );
}

function setCheck(name, status, message) {
  let c = checks.find((x) => x.name === name);
  if (!c) checks.push((c = { name, status: "idle", message: "" }));
  c.status = status;
  if (message !== undefined) c.message = message;
  renderChecks();
}

function infoMessage(info) {
  return (info.logs || [])
    .map((l) => `${l.level}: ${l.message}`)
    .join("; ")
    .slice(0, 500);
}

function withTimeout(promise, ms, what) {
  let timer;
  return Promise.race([
    promise,
    new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what} timed out after ${ms / 1000} s`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

async function runConnectionCheck(LK, url, accessToken) {
  const plan = [
    ["websocket", "checkWebsocket"],
    ["webrtc", "checkWebRTC"],
    ["turn", "checkTURN"],
  ];
  if (deviceTest) plan.push(["publish_audio", "checkPublishAudio"], ["publish_video", "checkPublishVideo"]);
  for (const [name] of plan) setCheck(name, "idle");
  const cc = new LK.ConnectionCheck(url, accessToken);
  for (const [name, method] of plan) {
    setCheck(name, "running");
    const skip = (name === "publish_audio" && media.microphone !== "ok") || (name === "publish_video" && media.camera !== "ok");
    if (skip) {
      setCheck(name, "failed", `device ${name === "publish_audio" ? "microphone" : "camera"}: ${name === "publish_audio" ? media.microphone : media.camera}`);
      continue;
    }
    try {
      const info = await withTimeout(cc[method](), CHECK_TIMEOUT_MS, name);
      setCheck(name, STATUS_NAMES[info.status] || "failed", infoMessage(info));
    } catch (err) {
      setCheck(name, "failed", String((err && err.message) || err));
    }
  }
}

function buildResult(phase) {
  const failed = checks.some((c) => c.status === "failed");
  return {
    ok: !failed && media.camera === "ok" && media.microphone === "ok",
    checks: checks.map((c) => ({ name: c.name, status: c.status, message: c.message })),
    user_agent: navigator.userAgent,
    camera: media.camera === "unknown" ? "missing" : media.camera,
    microphone: media.microphone === "unknown" ? "missing" : media.microphone,
    browser: browserKind(),
    secure_context: window.isSecureContext,
    media_error: media.error,
    phase,
    lang: currentLang(),
    ...(mediaCheck ? { media: mediaCheck } : {}),
  };
}

// ------------------------------------------------------------------- the real WebRTC check (media)
// Before joining: camera and microphone published for a few seconds to this LiveKit, in a probe room
// of its own (POST /_linkpronto/api/media-check-token: never a use of the link, never anyone in a
// room). Evidence: outbound packetsSent > 0, frames not black, the selected candidate pair and RTT.

function frameMean(videoTrack) {
  // The average level of a few pixels of the local camera (0 = black).
  return new Promise((resolve) => {
    const v = document.createElement("video");
    v.muted = true;
    v.playsInline = true;
    v.srcObject = new MediaStream([videoTrack]);
    const done = (val) => {
      v.srcObject = null;
      resolve(val);
    };
    v.onloadeddata = () => {
      setTimeout(() => {
        try {
          const c = document.createElement("canvas");
          c.width = 32;
          c.height = 24;
          const ctx = c.getContext("2d");
          ctx.drawImage(v, 0, 0, c.width, c.height);
          const px = ctx.getImageData(0, 0, c.width, c.height).data;
          let sum = 0;
          for (let i = 0; i < px.length; i += 4) sum += (px[i] + px[i + 1] + px[i + 2]) / 3;
          done(sum / (px.length / 4));
        } catch (_err) {
          done(null);
        }
      }, 300);
    };
    v.play().catch(() => done(null));
    setTimeout(() => done(null), 4000);
  });
}

function selectedPair(report) {
  const all = [];
  report.forEach((s) => all.push(s));
  const byId = new Map(all.map((s) => [s.id, s]));
  let pair = null;
  for (const s of all) {
    if (s.type === "transport" && s.selectedCandidatePairId) pair = byId.get(s.selectedCandidatePairId) || pair;
  }
  if (!pair) pair = all.find((s) => s.type === "candidate-pair" && s.nominated && s.state === "succeeded") || null;
  if (!pair) return { candidate: null, rtt: null };
  const remote = byId.get(pair.remoteCandidateId) || {};
  const address = remote.address || remote.ip || "";
  return {
    candidate: {
      type: remote.candidateType || null,
      protocol: remote.protocol || null,
      address: address ? `${address}:${remote.port || 0}`.slice(0, 64) : null,
    },
    rtt: typeof pair.currentRoundTripTime === "number" ? Math.round(pair.currentRoundTripTime * 1000) : null,
  };
}

async function mediaCheckStats(probe) {
  let packets = 0;
  let pair = { candidate: null, rtt: null };
  for (const pub of probe.localParticipant.trackPublications.values()) {
    const sender = pub.track && pub.track.sender;
    if (!sender) continue;
    const report = await sender.getStats();
    report.forEach((s) => {
      if (s.type === "outbound-rtp") packets += s.packetsSent || 0;
    });
    if (!pair.candidate) pair = selectedPair(report);
  }
  return { packets, ...pair };
}

async function runMediaCheck() {
  const t0 = performance.now();
  const out = (ok, status, reason, extra = {}) => ({
    ok, status, reason, duration_ms: Math.round(performance.now() - t0), ...extra,
  });
  const vt = media.stream && media.stream.getVideoTracks()[0];
  if (!vt) return out(false, "skipped", "no_camera");
  let grant;
  try {
    const res = await fetch(apiUrl("/_linkpronto/api/media-check-token"), {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ token }),
    });
    if (!res.ok) return out(false, "skipped", "no_token");
    grant = await res.json();
  } catch (_err) {
    return out(false, "failed", "signal");
  }
  let LK;
  try {
    LK = await loadLivekit();
  } catch (_err) {
    return out(false, "skipped", "no_client");
  }
  if (mediaAborted) return out(false, "skipped", "aborted");
  const probe = (mediaProbe = new LK.Room({}));
  const clones = [];
  let signalled = false; // the signalling WebSocket got through (then a failure is media: ICE)
  if (LK.RoomEvent && LK.RoomEvent.SignalConnected) probe.once(LK.RoomEvent.SignalConnected, () => { signalled = true; });
  try {
    try {
      await withTimeout(probe.connect(grant.url, grant.token), MEDIA_CHECK_TIMEOUT_MS, "connect");
    } catch (err) {
      // livekit-client connects the peer connection inside connect(): "could not establish pc connection"
      // is ICE (media), anything else is signalling.
      const msg = String((err && err.message) || err);
      if (mediaAborted) return out(false, "skipped", "aborted");
      const ice = signalled || /pc connection|ice|peer ?connection/i.test(msg);
      return out(false, "failed", ice ? "ice" : "signal", { error: msg.slice(0, 300), signalled });
    }
    const v = vt.clone();
    clones.push(v);
    const at = media.stream.getAudioTracks()[0];
    try {
      await withTimeout(probe.localParticipant.publishTrack(v, { source: LK.Track.Source.Camera }),
        MEDIA_CHECK_TIMEOUT_MS, "publish");
      if (at) {
        const a = at.clone();
        clones.push(a);
        await withTimeout(probe.localParticipant.publishTrack(a, { source: LK.Track.Source.Microphone }),
          MEDIA_CHECK_TIMEOUT_MS, "publish");
      }
    } catch (err) {
      if (mediaAborted) return out(false, "skipped", "aborted");
      return out(false, "failed", "ice", { error: String((err && err.message) || err).slice(0, 300) });
    }
    await new Promise((r) => setTimeout(r, (grant.seconds || 4) * 1000));
    if (mediaAborted) return out(false, "skipped", "aborted");
    const mean = await frameMean(vt);
    const black = mean !== null && mean < 8;
    const st = await mediaCheckStats(probe);
    const extra = { packets_sent: st.packets, black, rtt_ms: st.rtt, candidate: st.candidate };
    if (st.packets <= 0) return out(false, "failed", st.candidate ? "no_packets" : "ice", extra);
    if (black) return out(false, "failed", "black", extra);
    return out(true, "passed", null, extra);
  } catch (err) {
    return out(false, "failed", "error", { error: String((err && err.message) || err).slice(0, 300) });
  } finally {
    mediaProbe = null;
    probe.disconnect().catch(() => {});
    for (const c of clones) c.stop();
  }
}

async function abortMediaCheck() {
  // The patient tapped "Entrar" first: the call never waits for (nor overlaps) the probe.
  if (!mediaCheckRun || mediaCheck) return;
  mediaAborted = true;
  if (mediaProbe) mediaProbe.disconnect().catch(() => {});
  await Promise.race([mediaCheckRun, new Promise((r) => setTimeout(r, 2000))]);
}

function showMediaCheck(r) {
  let el = $("media-check");
  if (!el) {
    el = h("p", { id: "media-check", class: "help", role: "status", "aria-live": "polite" });
    $("lobby").append(el);
  }
  el.dataset.ok = String(Boolean(r && r.ok));
  el.dataset.reason = (r && (r.reason || r.status)) || "";
  const key = !r ? "pat.media.running" : r.ok ? "pat.media.passed" : r.status === "skipped" ? null : `pat.media.fail.${r.reason}`;
  el.hidden = key === null;
  if (key) {
    el.dataset.i18n = key;
    el.textContent = t(key);
  }
}

function startMediaCheck() {
  if (mediaCheckRun) return mediaCheckRun;
  showMediaCheck(null);
  mediaCheckRun = runMediaCheck().then(async (r) => {
    mediaCheck = r;
    showMediaCheck(r);
    if (r.status !== "skipped") await postDeviceCheck(buildResult("media-check"));
    return r;
  });
  return mediaCheckRun;
}

async function postDeviceCheck(result) {
  lastResult = result;
  try {
    const res = await fetch(apiUrl("/_linkpronto/api/device-check"), {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ token, result }),
      keepalive: true,
    });
    return res.ok;
  } catch (_err) {
    return false; // the check result is advisory; the call goes on without it
  }
}

async function publishedStats() {
  // The real call's outbound RTP: the same evidence as livekit-client's publish checks.
  const out = [];
  for (const pub of room.localParticipant.trackPublications.values()) {
    const track = pub.track;
    if (!track || !track.sender) continue;
    const name = track.kind === "audio" ? "publish_audio" : "publish_video";
    let packets = 0;
    try {
      const stats = await track.sender.getStats();
      stats.forEach((s) => {
        if (s.type === "outbound-rtp") packets += s.packetsSent || 0;
      });
    } catch (err) {
      out.push([name, "failed", String(err)]);
      continue;
    }
    out.push([name, packets > 0 ? "success" : "failed", `${packets} packets sent`]);
  }
  return out;
}

// -------------------------------------------------------------------------------------------- join

function showJoinError(message, fix) {
  const box = $("join-error");
  box.replaceChildren(problemBox(message, fix));
  box.hidden = false;
}

function showGone(message, fix) {
  stopMedia();
  const main = $("main");
  main.classList.add("gone");
  main.replaceChildren(h("h1", { text: message }), h("p", { text: fix || t("gone.help") }));
}

async function readError(res) {
  try {
    const body = await res.json();
    if (body && body.error) return body.error;
  } catch (_err) {
    // not JSON: fall through to the generic message
  }
  return { message: t("common.network_error"), fix: t("common.network_fix") };
}

async function requestJoin() {
  const name = $("display-name").value.trim();
  try {
    localStorage.setItem("linkpronto.name", name);
  } catch (_err) {
    // storage disabled (private mode): the name is simply not remembered
  }
  const ctrl = new AbortController();
  const timer = setTimeout(() => ctrl.abort(), JOIN_TIMEOUT_MS);
  let res;
  try {
    res = await fetch(apiUrl("/_linkpronto/api/join"), {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ token, display_name: name || null }),
      signal: ctrl.signal,
    });
  } catch (_err) {
    showJoinError(t("common.network_error"), t("conn.failed_fix"));
    return null;
  } finally {
    clearTimeout(timer);
  }
  if (res.status === 404 || res.status === 410) {
    const err = await readError(res);
    showGone(err.message || t("gone.expired"), err.fix);
    return null;
  }
  if (res.status === 429) {
    const err = await readError(res);
    showJoinError(err.message || t("pat.too_many"), err.fix || t("pat.too_many_fix"));
    return null;
  }
  if (!res.ok) {
    const err = await readError(res);
    showJoinError(err.message, err.fix);
    return null;
  }
  return res.json();
}

async function onJoin() {
  const btn = $("join");
  btn.disabled = true;
  $("join-error").hidden = true;
  try {
    await mediaPending; // a tap before the permission answer waits for it
    await abortMediaCheck(); // the probe publish and the call never overlap
    const grant = await requestJoin();
    if (!grant) return;
    let LK;
    try {
      LK = await loadLivekit();
    } catch (err) {
      showJoinError(t("conn.failed"), t("conn.failed_fix"));
      return;
    }
    checks.length = 0;
    $("checks-box").hidden = false;
    $("checks-note").textContent = "";
    if (deviceTest) stopMedia(); // the publish checks open the camera themselves (iOS allows one user)
    await runConnectionCheck(LK, grant.livekit_url, grant.access_token);
    const result = buildResult(deviceTest ? "device-test" : "preflight");
    const sent = await postDeviceCheck(result);
    if (deviceTest) {
      const note = $("checks-note");
      note.dataset.i18n = result.ok ? "pat.devtest.ok" : "pat.devtest.fail";
      note.textContent = t(note.dataset.i18n);
      note.dataset.ok = String(result.ok);
      await startMedia();
      return;
    }
    if (checks.some((c) => c.status === "failed")) $("checks-note").textContent = t("pat.check_warn");
    else if (sent) $("checks-note").textContent = t("pat.sent");
    await enterCall(LK, grant);
  } finally {
    btn.disabled = false;
  }
}

async function enterCall(LK, grant) {
  leaving = false;
  room = new LK.Room({ adaptiveStream: true, dynacast: true, reconnectPolicy: reconnectPolicy() });
  const setState = bindRoom(LK, room, {
    remoteBox: $("remote-video"),
    stateEl: $("conn-state"),
    onDisconnected: (reason) => {
      if (leaving) return;
      const R = LK.DisconnectReason || {};
      if (reason === R.PARTICIPANT_REMOVED || reason === R.ROOM_DELETED) {
        showGone(t("gone.revoked"), t("gone.help"));
      } else {
        showAfter("conn.disconnected");
      }
    },
  });
  $("lobby").hidden = true;
  $("in-call").hidden = false;
  setState("connecting");
  try {
    await withTimeout(room.connect(grant.livekit_url, grant.access_token), JOIN_TIMEOUT_MS + 10000, "connect");
  } catch (err) {
    leaving = true;
    room.disconnect().catch(() => {});
    setState("failed");
    $("in-call").hidden = true;
    $("lobby").hidden = false;
    showJoinError(t("conn.failed"), t("conn.failed_fix"));
    setCheck("call", "failed", String((err && err.message) || err));
    postDeviceCheck(buildResult("in-call"));
    return;
  }
  setState("connected");
  const stream = media.stream;
  if (stream) {
    const vt = stream.getVideoTracks()[0];
    const at = stream.getAudioTracks()[0];
    if (vt) await room.localParticipant.publishTrack(vt, { source: LK.Track.Source.Camera });
    if (at) await room.localParticipant.publishTrack(at, { source: LK.Track.Source.Microphone });
    showLocal($("local-video"), vt || null);
  }
  if (meterStop) meterStop();
  meterStop = null;
  setTimeout(async () => {
    if (!room || room.state !== "connected") return;
    for (const [name, status, message] of await publishedStats()) setCheck(name, status, message);
    postDeviceCheck(buildResult("in-call"));
  }, STATS_DELAY_MS);
}

function showAfter(key) {
  $("in-call").hidden = true;
  $("lobby").hidden = true;
  $("after").hidden = false;
  const p = $("after-text");
  p.dataset.i18n = key;
  p.textContent = t(key);
  stopMedia();
}

async function onLeave() {
  leaving = true;
  if (room) await room.disconnect();
  room = null;
  showAfter("pat.left");
}

async function onRejoin() {
  $("after").hidden = true;
  $("lobby").hidden = false;
  $("checks-box").hidden = true;
  await startMedia();
}

function toggle(kind) {
  if (room) toggleDevice(room, kind, $(kind === "mic" ? "toggle-mic" : "toggle-cam"));
}

// -------------------------------------------------------------------------------------------- init

function init() {
  initLangToggle();
  onLangChange(() => {
    showEnvWarnings();
    if (!$("media-help").hidden) {
      const kind = $("media-help").dataset.kind || "error";
      showMediaProblem(kind.startsWith("denied") ? "denied" : kind);
    }
    applyI18n();
  });
  try {
    $("display-name").value = localStorage.getItem("linkpronto.name") || "";
  } catch (_err) {
    // storage disabled: start with an empty name
  }
  showEnvWarnings();
  $("enable-media").hidden = true;
  $("enable-media").addEventListener("click", () => startMedia());
  $("join").addEventListener("click", () => onJoin());
  $("leave").addEventListener("click", () => onLeave());
  $("rejoin").addEventListener("click", () => onRejoin());
  $("toggle-mic").addEventListener("click", () => toggle("mic"));
  $("toggle-cam").addEventListener("click", () => toggle("cam"));
  window.addEventListener("pagehide", () => {
    if (room) room.disconnect();
  });
  startMedia().then(() => {
    if (media.camera === "ok") startMediaCheck();
  });
  prefetchLivekit();
}

init();

// For tests and support: the last device-check result this page sent.
window.__linkpronto = { lastResult: () => lastResult, mediaCheck: () => mediaCheckRun, room: () => room };
