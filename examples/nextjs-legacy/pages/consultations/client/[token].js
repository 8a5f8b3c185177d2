// The patient's page: the room comes from the link's token; the LiveKit token from the app's own route.
import { useRouter } from "next/router";
import { useEffect, useRef, useState } from "react";

export default function ClientConsultation() {
  const router = useRouter();
  const token = typeof router.query.token === "string" ? router.query.token : "";
  const [professional, setProfessional] = useState(null);
  const [error, setError] = useState("");
  const [state, setState] = useState("idle");
  const [name, setName] = useState("");
  const [joinedRoom, setJoinedRoom] = useState("");
  const lkRoom = useRef(null);

  function loadProfessional(slug) {
    fetch(`/api/public/professional?slug=${encodeURIComponent(slug)}`)
      .then((r) => (r.ok ? r.json() : Promise.reject(new Error(`HTTP ${r.status}`))))
      .then(setProfessional)
      .catch(() => setError("Não foi possível carregar as informações do profissional."));
  }
  useEffect(() => () => lkRoom.current?.disconnect(), []);

  async function join() {
    setState("connecting");
    try {
      const res = await fetch("/_linkpronto/api/join", {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ token, display_name: name || "Paciente" }),
      });
      const grant = await res.json();
      if (!res.ok) throw new Error(grant?.error?.message || `HTTP ${res.status}`);
      const { room: roomName, access_token: accessToken, livekit_url: wsUrl } = grant;
      setJoinedRoom(roomName);
      loadProfessional(roomName.replace(/^consulta-/, ""));
      const { Room } = await import("livekit-client");
      const room = (lkRoom.current = new Room());
      await room.connect(wsUrl, accessToken);
      setState(`connected:${roomName}`);
    } catch (err) {
      setState(`error: ${err.message || err}`);
    }
  }

  return (
    <main style={{ fontFamily: "system-ui, sans-serif", maxWidth: 480, margin: "1rem auto", padding: "0 1rem" }}>
      <h1>Sua consulta</h1>
      {professional && <p id="professional">{professional.name} · {professional.specialty}</p>}
      {error && <p role="alert" id="load-error">{error}</p>}
      <label>Seu nome <input id="name" value={name} onChange={(e) => setName(e.target.value)} /></label>
      <p><button type="button" onClick={join} disabled={!token || state === "connecting"}>Entrar na consulta</button></p>
      {joinedRoom && <p>Sala: <code id="room">{joinedRoom}</code></p>}
      <p id="state" role="status">{state}</p>
    </main>
  );
}
