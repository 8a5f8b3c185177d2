// Test double of the livekit-client 2.x browser API surface that linkpronto's pages use, installed
// as window.LivekitClient before the page loads (the pages only load the real bundle when
// window.LivekitClient is absent). It imitates, from livekit-client's published type definitions
// (dist/src/room/Room.d.ts, room/events.d.ts, connectionHelper/ConnectionCheck.d.ts):
// Room (on/once/connect/disconnect, localParticipant, remoteParticipants, state), RoomEvent names,
// Track.Kind/Source, DisconnectReason, CheckStatus and ConnectionCheck (each check resolves SUCCESS).
// Tests drive room events through window.__fakeRooms[i].emit(name, ...args).
(() => {
  const RoomEvent = {
    TrackSubscribed: "trackSubscribed", TrackUnsubscribed: "trackUnsubscribed",
    ParticipantConnected: "participantConnected", ParticipantDisconnected: "participantDisconnected",
    Reconnecting: "reconnecting", SignalReconnecting: "signalReconnecting", Reconnected: "reconnected",
    Disconnected: "disconnected", AudioPlaybackStatusChanged: "audioPlaybackChanged",
  };
  const rooms = [];
  window.__fakeRooms = rooms;
  window.__fakeLog = [];
  class Room {
    constructor() {
      this.handlers = {};
      this.state = "disconnected";
      this.remoteParticipants = new Map();
      this.canPlaybackAudio = true;
      const published = new Map();
      this.localParticipant = {
        trackPublications: published,
        isMicrophoneEnabled: true,
        isCameraEnabled: true,
        publishTrack: async (track, opts) => {
          window.__fakeLog.push(["publish", track.kind, opts && opts.source]);
          published.set(track.kind, { track: { kind: track.kind, sender: { getStats: async () => new Map([["o", { type: "outbound-rtp", packetsSent: 42 }]]) } } });
        },
        enableCameraAndMicrophone: async () => window.__fakeLog.push(["enableCameraAndMicrophone"]),
        getTrackPublication: () => undefined,
        setMicrophoneEnabled: async (on) => { this.localParticipant.isMicrophoneEnabled = on; window.__fakeLog.push(["mic", on]); },
        setCameraEnabled: async (on) => { this.localParticipant.isCameraEnabled = on; window.__fakeLog.push(["cam", on]); },
      };
      rooms.push(this);
    }
    on(name, fn) { (this.handlers[name] ||= []).push(fn); return this; }
    once(name, fn) { return this.on(name, fn); }
    emit(name, ...args) { for (const fn of this.handlers[name] || []) fn(...args); }
    async connect(url, token) { window.__fakeLog.push(["connect", url, token]); this.state = "connected"; }
    async disconnect() { if (this.state === "disconnected") return; this.state = "disconnected"; this.emit("disconnected", 1); }
    async startAudio() {}
  }
  class ConnectionCheck {
    constructor(url, token) { this.url = url; this.token = token; }
  }
  for (const m of ["checkWebsocket", "checkWebRTC", "checkTURN", "checkPublishAudio", "checkPublishVideo"]) {
    ConnectionCheck.prototype[m] = async function () {
      window.__fakeLog.push(["check", m, this.url, this.token]);
      return { name: m, status: m === "checkTURN" ? 2 : 3, logs: [{ level: "info", message: `${m} fine` }], description: m };
    };
  }
  window.LivekitClient = {
    Room, RoomEvent, ConnectionCheck,
    Track: { Kind: { Audio: "audio", Video: "video" }, Source: { Camera: "camera", Microphone: "microphone" } },
    DisconnectReason: { CLIENT_INITIATED: 1, PARTICIPANT_REMOVED: 4, ROOM_DELETED: 5 },
    CheckStatus: { IDLE: 0, RUNNING: 1, SKIPPED: 2, SUCCESS: 3, FAILED: 4 },
  };
})();
