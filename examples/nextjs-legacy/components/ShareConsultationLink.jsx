// The seed's share component: one fixed alert for any non-2xx or success:false, never polls.
import { useState } from "react";

export default function ShareConsultationLink({ professionalId, clientId, consultationType, roomName }) {
  const [link, setLink] = useState(null);
  const [loading, setLoading] = useState(false);

  const generateConsultationLink = async () => {
    setLoading(true);
    try {
      const response = await fetch("/api/generate-consultation-token", {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ professionalId, clientId, consultationType, roomName }),
      });
      const data = await response.json();
      if (!response.ok || !data.success) {
        alert("Erro ao gerar link da consulta. Tente novamente.");
        return;
      }
      setLink(data);
    } catch {
      alert("Erro ao gerar link da consulta. Tente novamente.");
    } finally {
      setLoading(false);
    }
  };

  return (
    <section id="share" data-state={link ? "ready" : loading ? "loading" : "idle"}>
      <button type="button" onClick={generateConsultationLink} disabled={loading}>Gerar link</button>
      {link && (
        <div id="share-ready">
          <input id="consultation-url" readOnly value={link.consultationUrl} style={{ width: "100%" }} />
          <p id="short-message">{link.shortMessage}</p>
          <p><a href={link.whatsappDeepLink} target="_blank" rel="noreferrer">Enviar pelo WhatsApp</a></p>
        </div>
      )}
    </section>
  );
}
