// Migrated: linkpronto's drop-in makes the token (WhatsApp-safe), stores it, verifies the whole path
// through the public address and answers the old contract — for the professional's own room
// (`roomName`) and in the app's own words (`messageTemplate`). It waits up to `waitS` before
// answering, so this component (one alert on any non-2xx, no polling) gets its 200.
import { requireProfessional } from "../../lib/guard";
import { professionalBySlug } from "../../lib/professionals";

export default async function handler(req, res) {
  if (req.method !== "POST") return res.status(405).json({ success: false, error: "Método não permitido" });
  if (!(await requireProfessional(req, res))) return;
  const { professionalId, clientId, consultationType, roomName } = req.body || {};
  const professional = professionalBySlug(professionalId);
  if (!professional) return res.status(400).json({ success: false, error: "Profissional inválido" });
  const base = process.env.LINKPRONTO_ADMIN_URL;
  const token = process.env.LINKPRONTO_ADMIN_TOKEN;
  if (!base || !token) return res.status(503).json({ success: false, error: "Rode: npm run linkpronto" });
  const answer = await fetch(`${base}/api/generate-consultation-token`, {
    method: "POST",
    headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/json" },
    body: JSON.stringify({
      professionalId: professional.slug,
      clientId,
      consultationType,
      roomName: roomName || `consulta-${professional.slug}`,
      messageTemplate: `Olá! Sua consulta com ${professional.name} está pronta. Acesse: {url}`,
      waitS: 25,
    }),
  });
  return res.status(answer.status).json(await answer.json());
}
