// Shared LiveKit glue for the patient and professional pages.
// livekit-client is vendored (static/vendor/livekit-client.umd.js, copied from npm at set-up) and
// loaded lazily from our own origin, so it never delays the first paint.

import { t } from "./i18n.js";

const BUNDLE = "/_linkpronto/static/vendor/livekit-client.umd.js";
const LOAD_TIMEOUT_MS = 30000;
let loading = null;

/** Load the UMD bundle once; resolves to the LivekitClient namespace. */
export function loadLivekit() {
  if (window.LivekitClient) return Promise.resolve(window.LivekitClient);
  if (loading) return loading;
  loading = new Promise((resolve, reject) => {
    const s = document.createElement("script");
    s.src = BUNDLE;
    s.async = true;
    const timer = setTimeout(() => reject(new Error("livekit-client load timeout")), LOAD_TIMEOUT_MS);
    s.onload = () => {
      clearTimeout(timer);
      if (window.LivekitClient) resolve(window.LivekitClient);
      else reject(new Error("livekit-client bundle did not define LivekitClient"));
    };
    s.onerror = () => {
      clearTimeout(timer);
      reject(new Error("livekit-client bundle failed to load"));
    };
    document.head.append(s);
  });
  loading.catch(() => {
    loading = null; // allow a retry
  });
  return loading;
}

/**
 * livekit-client's reconnect schedule for our pages (Room option ``reconnectPolicy``). Its default
 * retries at about 0, 0.3, 1.5, 4.2 and 9 s (with jitter) and then gives up: after a crash of a local
 * livekit-server, which linkpronto restarts within a second or two, a client that missed the 4.2 s try
 * waited until 9 s. Ours retries every RETRY_FAST_MS for the first RETRY_FAST_FOR_MS (the server is
 * back as soon as it is ready), then every RETRY_SLOW_MS up to RETRY_GIVE_UP_MS (a tunnel or network
 * change), then stops (the page says the connection was lost).
 */
export const RETRY_FAST_MS = 400;
export const RETRY_FAST_FOR_MS = 20000;
export const RETRY_SLOW_MS = 2000;
export const RETRY_GIVE_UP_MS = 60000;
export function reconnectPolicy() {
  return {
    nextRetryDelayInMs(context) {
      if (context.retryCount === 0) return 0;
      if (context.elapsedMs < RETRY_FAST_FOR_MS) return RETRY_FAST_MS;
      if (context.elapsedMs < RETRY_GIVE_UP_MS) return RETRY_SLOW_MS;
      return null;
    },
  };
}

/** Start fetching the bundle when the browser is idle (after the first paint). */
export function prefetchLivekit() {
  const go = () => loadLivekit().catch(() => {}); // a failure is reported when it is really needed
  if ("requestIdleCallback" in window) requestIdleCallback(go, { timeout: 2000 });
  else setTimeout(go, 300);
}

/**
 * Wire a Room to the page: remote video/audio into remoteBox, connection states to stateEl.
 * onPeer(count) is called when remote participants come and go.
 */
export function bindRoom(LK, room, { remoteBox, stateEl, onPeer, onDisconnected }) {
  const E = LK.RoomEvent;
  const setState = (state) => {
    if (!stateEl) return;
    stateEl.dataset.state = state;
    stateEl.dataset.i18n = `conn.${state}`;
    stateEl.textContent = t(`conn.${state}`);
  };
  const peers = () => room.remoteParticipants.size;
  room
    .on(E.TrackSubscribed, (track) => {
      if (track.kind === LK.Track.Kind.Video || track.kind === LK.Track.Kind.Audio) {
        const el = track.attach();
        el.dataset.sid = track.sid || "";
        if (track.kind === LK.Track.Kind.Video) {
          el.playsInline = true;
          remoteBox.replaceChildren(el);
        } else {
          el.hidden = true;
          document.body.append(el);
        }
      }
    })
    .on(E.TrackUnsubscribed, (track) => {
      for (const el of track.detach()) el.remove();
    })
    .on(E.ParticipantConnected, () => onPeer && onPeer(peers()))
    .on(E.ParticipantDisconnected, () => {
      if (peers() === 0) remoteBox.replaceChildren();
      if (onPeer) onPeer(peers());
    })
    .on(E.Reconnecting, () => setState("reconnecting"))
    .on(E.SignalReconnecting, () => setState("reconnecting"))
    .on(E.Reconnected, () => setState("reconnected"))
    .on(E.Disconnected, (reason) => {
      setState("disconnected");
      if (onDisconnected) onDisconnected(reason);
    })
    .on(E.AudioPlaybackStatusChanged, () => {
      // Autoplay blocked: the next tap anywhere starts the audio.
      if (!room.canPlaybackAudio) {
        document.addEventListener("click", () => room.startAudio().catch(() => {}), { once: true });
      }
    });
  return setState;
}

/** Show a local camera track (LocalVideoTrack or MediaStreamTrack) in a <video>. */
export function showLocal(videoEl, mediaStreamTrack) {
  if (!mediaStreamTrack) {
    videoEl.srcObject = null;
    return;
  }
  videoEl.srcObject = new MediaStream([mediaStreamTrack]);
  videoEl.play().catch(() => {}); // muted + playsinline autoplay; a refusal only delays the preview
}

/** Mute/unmute the microphone or camera of `room`'s local participant and relabel `btn`. */
export async function toggleDevice(room, kind, btn) {
  const lp = room.localParticipant;
  if (kind === "mic") {
    const on = !lp.isMicrophoneEnabled;
    await lp.setMicrophoneEnabled(on);
    btn.dataset.i18n = on ? "call.mic_off" : "call.mic_on";
  } else {
    const on = !lp.isCameraEnabled;
    await lp.setCameraEnabled(on);
    btn.dataset.i18n = on ? "call.cam_off" : "call.cam_on";
  }
  btn.textContent = t(btn.dataset.i18n);
  btn.setAttribute("aria-pressed", String(btn.dataset.i18n.endsWith("_on")));
}
