// The seed's route, migrated: linkpronto makes the token, stores it, verifies the whole path through the
// public address and only then answers 200 with a link that works. Same request and answer shape as
// before ({success, token, consultationUrl, qrCode, whatsappDeepLink, shortMessage, expiresAt,
// createdAt}) plus `room` (the LiveKit room, for the professional's side). Not ready yet: 202 with
// {success: false, error, linkId, status: "preparing"}; failed: 503 with {success: false, error, fix}.
import { requireProfessional } from "../../lib/auth";
import { linkpronto } from "../../lib/linkpronto";

export default async function handler(req, res) {
  if (req.method !== "POST") {
    res.setHeader("Allow", "POST");
    return res.status(405).json({ success: false, error: "Use POST." });
  }
  const professional = await requireProfessional(req, res); // refuses anonymous internet callers
  if (!professional) return;
  const { professionalId, clientId, consultationType } = req.body || {};
  const { status, data } = await linkpronto("/api/generate-consultation-token", {
    method: "POST",
    body: {
      professionalId: professional.id || professionalId,
      clientId,
      consultationType,
      waitS: 20,
    },
  });
  return res.status(status).json(data);
}
