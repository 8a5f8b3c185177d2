// The professional's side of the call: the token comes from the app's own /api/livekit/token (signed
// with the env keys) for the drop-in's `room`, the patient's room.
import { useRouter } from "next/router";
import { useEffect, useRef, useState } from "react";

export default function ProfessionalRoom() {
  const router = useRouter();
  const room = typeof router.query.room === "string" ? router.query.room : "";
  const [state, setState] = useState("idle");
  const lkRoom = useRef(null);

  useEffect(() => () => lkRoom.current?.disconnect(), []);

  async function join() {
    setState("connecting");
    try {
      const res = await fetch(`/api/livekit/token?room=${encodeURIComponent(room)}`);
      const { token, url, error } = await res.json();
      if (!res.ok) throw new Error(error || `HTTP ${res.status}`);
      const { Room } = await import("livekit-client");
      const r = (lkRoom.current = new Room());
      r.on("disconnected", () => setState("disconnected"));
      await r.connect(url, token);
      setState("connected");
    } catch (err) {
      setState(`error: ${err.message || err}`);
    }
  }

  return (
    <main style={{ fontFamily: "system-ui, sans-serif", maxWidth: 640, margin: "2rem auto", padding: "0 1rem" }}>
      <h1>Sala da consulta</h1>
      <p>Sala: <code id="room">{room}</code></p>
      <button type="button" onClick={join} disabled={!room || state === "connecting"}>Entrar na sala</button>
      <p id="state" role="status">{state}</p>
    </main>
  );
}
