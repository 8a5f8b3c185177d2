// The patient's page at the app's own link route. Opening it has no side effect; the device check runs
// on the patient's phone, then joining is a POST to linkpronto's /_linkpronto/api/join (same origin,
// through the tunnel), which answers the LiveKit URL and a short-lived token for this link's room only.
import { useRouter } from "next/router";
import { useEffect, useRef, useState } from "react";

export default function PatientConsultation() {
  const router = useRouter();
  const token = typeof router.query.token === "string" ? router.query.token : "";
  const video = useRef(null);
  const [devices, setDevices] = useState("checking");
  // {step, room, message}: what the patient sees is a sentence in plain words, never a raw state.
  const [state, setState] = useState({ step: "idle" });
  const [name, setName] = useState("");

  useEffect(() => {
    let stream;
    (async () => {
      try {
        stream = await navigator.mediaDevices.getUserMedia({ video: true, audio: true });
        if (video.current) video.current.srcObject = stream;
        setDevices("ok");
      } catch (err) {
        setDevices(`Não conseguimos usar a câmera ou o microfone (${err.name || err}). Libere o acesso no navegador e recarregue a página.`);
      }
    })();
    return () => stream?.getTracks().forEach((t) => t.stop());
  }, []);

  async function join() {
    setState({ step: "joining" });
    try {
      const res = await fetch("/_linkpronto/api/join", {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ token, display_name: name || null }),
      });
      const grant = await res.json();
      if (!res.ok) throw new Error(grant?.error?.message || `HTTP ${res.status}`);
      const { Room } = await import("livekit-client");
      const room = new Room();
      setState({ step: "joined", room: grant.room });
      await room.connect(grant.livekit_url, grant.access_token);
      setState({ step: "connected", room: grant.room });
    } catch (err) {
      setState((s) => ({ step: "error", room: s.room, message: err.message || String(err) }));
    }
  }

  return (
    <main style={{ fontFamily: "system-ui, sans-serif", maxWidth: 480, margin: "1rem auto", padding: "0 1rem" }}>
      <h1>Sua consulta</h1>
      <video ref={video} id="preview" autoPlay muted playsInline style={{ width: "100%", background: "#000" }} />
      <p id="devices" role="status">{devices === "ok" ? "Câmera e microfone funcionando" : devices}</p>
      <label>
        Seu nome <input id="name" value={name} onChange={(e) => setName(e.target.value)} />
      </label>
      <p>
        <button type="button" onClick={join} disabled={devices !== "ok" || !token || state.step !== "idle" && state.step !== "error"}>
          Entrar na consulta
        </button>
      </p>
      <p id="state" role="status" data-step={state.step}>{describe(state)}</p>
    </main>
  );
}

function describe({ step, room, message }) {
  if (step === "joining") return "Entrando na consulta…";
  if (step === "joined") return `Conectando à sala ${room}…`;
  if (step === "connected") return `Você está na consulta (sala ${room}).`;
  if (step === "error") {
    return `Não foi possível entrar${room ? ` na sala ${room}` : ""}: ${message}. Tente de novo em instantes.`;
  }
  return "";
}
