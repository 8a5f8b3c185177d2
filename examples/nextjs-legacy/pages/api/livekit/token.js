// LiveKit token for any room and any identity (the app's own route, no authentication), with the URL the
// browser connects to — LiveKit's examples' convention: LIVEKIT_URL is the URL clients use.
import { AccessToken } from "livekit-server-sdk";

export default async function handler(req, res) {
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
