// The professional's LiveKit token (patients get theirs from linkpronto's /_linkpronto/api/join, which
// applies the link's expiry, uses and revocation). Under linkpronto, LIVEKIT_URL is the public URL.
import { AccessToken } from "livekit-server-sdk";
import { requireProfessional } from "../../../lib/guard";

export default async function handler(req, res) {
  if (!(await requireProfessional(req, res))) return;
  const room = String(req.query.room || "");
  const identity = String(req.query.identity || `user-${Math.random().toString(36).slice(2, 8)}`);
  const name = String(req.query.name || identity);
  if (!room) return res.status(400).json({ error: "room é obrigatório" });
  const { LIVEKIT_API_KEY, LIVEKIT_API_SECRET } = process.env;
  if (!LIVEKIT_API_KEY || !LIVEKIT_API_SECRET) return res.status(500).json({ error: "LiveKit não configurado" });
  const at = new AccessToken(LIVEKIT_API_KEY, LIVEKIT_API_SECRET, { identity, name, ttl: "2h" });
  at.addGrant({ roomJoin: true, room, canPublish: true, canSubscribe: true });
  return res.status(200).json({
    token: await at.toJwt(),
    wsUrl: process.env.LIVEKIT_URL || process.env.NEXT_PUBLIC_LIVEKIT_URL,
  });
}
