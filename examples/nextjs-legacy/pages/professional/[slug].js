// The professional's page: the room comes from the professional's public slug.
import { useRouter } from "next/router";
import { useEffect, useRef, useState } from "react";
import ShareConsultationLink from "../../components/ShareConsultationLink";

export default function ProfessionalPage() {
  const router = useRouter();
  const slug = typeof router.query.slug === "string" ? router.query.slug : "";
  const roomName = `consulta-${slug}`;
  const [state, setState] = useState("idle");
  const [hydrated, setHydrated] = useState(false);
  const lkRoom = useRef(null);
  useEffect(() => setHydrated(true), []);
  useEffect(() => () => lkRoom.current?.disconnect(), []);

  async function join() {
    setState("connecting");
    try {
      const res = await fetch(`/api/livekit/token?room=${encodeURIComponent(roomName)}&identity=pro-${slug}&name=Profissional`);
      const { token, wsUrl, error } = await res.json();
      if (!res.ok) throw new Error(error || `HTTP ${res.status}`);
      const { Room } = await import("livekit-client");
      const room = (lkRoom.current = new Room());
      room.on("disconnected", () => setState("disconnected"));
      await room.connect(wsUrl, token);
      setState("connected");
    } catch (err) {
      setState(`error: ${err.message || err}`);
    }
  }

  return (
    <main data-hydrated={hydrated ? "1" : "0"} style={{ fontFamily: "system-ui, sans-serif", maxWidth: 640, margin: "2rem auto", padding: "0 1rem" }}>
      <h1>Sala do profissional</h1>
      <p>Sala: <code id="room">{roomName}</code></p>
      <ShareConsultationLink professionalId={slug} clientId="paciente-1" consultationType="online" roomName={roomName} />
      <button type="button" onClick={join} disabled={!slug || state === "connecting"}>Entrar na sala</button>
      <p id="state" role="status">{state}</p>
    </main>
  );
}
