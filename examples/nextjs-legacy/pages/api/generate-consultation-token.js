// The seed's route: the token is the professional's slug made URL-safe ("sem underscore", so WhatsApp
// does not turn part of the link into italics); the URL is built from NEXT_PUBLIC_SITE_URL.
import { professionalBySlug } from "../../lib/professionals";

const SITE = () => process.env.NEXT_PUBLIC_SITE_URL || "https://kalonconnect.com";

function generateUniqueToken(slug) {
  return String(slug).toLowerCase().replace(/[^a-z0-9]+/g, "");
}

export default async function handler(req, res) {
  if (req.method !== "POST") return res.status(405).json({ success: false, error: "Método não permitido" });
  const { professionalId, clientId, consultationType } = req.body || {};
  const professional = professionalBySlug(professionalId);
  if (!professional) return res.status(400).json({ success: false, error: "Profissional inválido" });
  const token = generateUniqueToken(professional.slug);
  const consultationUrl = `${SITE()}/consultations/client/${token}`;
  const shortMessage = `Olá! Sua consulta com ${professional.name} está pronta. Acesse: ${consultationUrl}`;
  const now = new Date();
  return res.status(200).json({
    success: true,
    token,
    consultationUrl,
    qrCode: `https://api.qrserver.com/v1/create-qr-code/?data=${encodeURIComponent(consultationUrl)}`,
    whatsappDeepLink: `https://wa.me/?text=${encodeURIComponent(shortMessage)}`,
    shortMessage,
    clientId: clientId || null,
    consultationType: consultationType || null,
    expiresAt: new Date(now.getTime() + 24 * 3600 * 1000).toISOString(),
    createdAt: now.toISOString(),
  });
}
