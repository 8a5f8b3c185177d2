// The seed's share component, handling the three answers of the migrated route:
//   200 ready     → the link (verified through the public address), QR code, WhatsApp, room
//   202 preparing → "Preparando…", then the link as soon as linkpronto has verified it
//   other         → the error sentence and its fix
import { useState } from "react";

const POLL_MS = 1000;

export default function ShareConsultationLink({ professionalId, clientId, consultationType }) {
  const [state, setState] = useState({ phase: "idle" });

  async function waitReady(linkId) {
    for (;;) {
      await new Promise((r) => setTimeout(r, POLL_MS));
      const res = await fetch(`/api/consultation-link-status?id=${encodeURIComponent(linkId)}`);
      const data = await res.json();
      if (data.status === "ready" && data.url) return data;
      if (!res.ok || !["preparing", "ready"].includes(data.status)) throw new Error(data.error || data.status);
    }
  }

  async function generateConsultationLink() {
    setState({ phase: "loading" });
    try {
      const response = await fetch("/api/generate-consultation-token", {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ professionalId, clientId, consultationType }),
      });
      const data = await response.json();
      if (response.status === 200 && data.success) {
        new URL(data.consultationUrl); // never null on success
        setState({ phase: "ready", url: data.consultationUrl, qr: data.qrCode, whatsapp: data.whatsappDeepLink,
                   room: data.room, expiresAt: data.expiresAt });
        return;
      }
      if (response.status === 202 && data.linkId) {
        setState({ phase: "preparing", message: data.error });
        const ready = await waitReady(data.linkId);
        setState({ phase: "ready", url: ready.url, room: ready.room });
        return;
      }
      setState({ phase: "error", message: data.error || `HTTP ${response.status}`, fix: data.fix });
    } catch (err) {
      setState({ phase: "error", message: String(err.message || err) });
    }
  }

  return (
    <section id="share" data-state={state.phase}>
      <button type="button" onClick={generateConsultationLink} disabled={state.phase === "loading"}>
        Gerar link
      </button>
      {state.phase === "loading" && <p role="status">Gerando…</p>}
      {state.phase === "preparing" && (
        <p role="status" id="preparing">Preparando o sistema… {state.message}</p>
      )}
      {state.phase === "error" && (
        <div role="alert" id="share-error">
          <p>{state.message}</p>
          {state.fix && <p>{state.fix}</p>}
        </div>
      )}
      {state.phase === "ready" && (
        <div id="share-ready">
          <label>
            Link da consulta
            <input id="consultation-url" readOnly value={state.url} style={{ width: "100%" }} />
          </label>
          {state.qr && <img id="qr" src={state.qr} alt="QR code do link" width={200} height={200} />}
          {state.whatsapp && (
            <p><a href={state.whatsapp} target="_blank" rel="noreferrer">Enviar pelo WhatsApp</a></p>
          )}
          <p>
            <a id="room-link" href={`/professional/room?room=${encodeURIComponent(state.room)}`}>Abrir a sala</a>
          </p>
        </div>
      )}
    </section>
  );
}
