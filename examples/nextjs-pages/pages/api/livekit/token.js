// The professional's LiveKit token, signed by the app itself with LIVEKIT_API_KEY/LIVEKIT_API_SECRET from
// its environment: under `linkpronto up --app` that is the pair LiveKit runs with (generated, configured
// or LiveKit Cloud), so LiveKit accepts it. `room` is the drop-in's `room`: the patient's room.
import { AccessToken } from "livekit-server-sdk";
import { requireProfessional } from "../../../lib/auth";

export default async function handler(req, res) {
  const professional = await requireProfessional(req, res);
  if (!professional) return;
  const room = String(req.query.room || "");
  const { LIVEKIT_API_KEY, LIVEKIT_API_SECRET, NEXT_PUBLIC_LIVEKIT_URL } = process.env;
  if (!room) return res.status(400).json({ error: "room é obrigatório" });
  if (!LIVEKIT_API_KEY || !LIVEKIT_API_SECRET) {
    return res.status(500).json({ error: "LiveKit configuration missing (run under linkpronto up --app)" });
  }
  const identity = `pro-${professional.id || "local"}`;
  const at = new AccessToken(LIVEKIT_API_KEY, LIVEKIT_API_SECRET, { identity, name: "Profissional", ttl: "15m" });
  at.addGrant({ roomJoin: true, room, canPublish: true, canSubscribe: true });
  // The URL is read at run time (this is server code): no rebuild when the public address changes.
  return res.status(200).json({ token: await at.toJwt(), url: NEXT_PUBLIC_LIVEKIT_URL, identity });
}
