// Who may do professional things (create links, mint a LiveKit token). Replace `currentProfessional`
// with the app's real login check. "This computer" is proved, never assumed from a missing header:
// the request does not carry linkpronto's `X-Linkpronto-Via` (set on every request that came through
// the public address, a client's own copy replaced) AND either the socket peer is loopback or it
// carries `X-Linkpronto-Local` equal to LINKPRONTO_LOCAL_SECRET (made at each start of linkpronto and
// handed only to this app's environment; the public gateway drops every client copy of the header).
import crypto from "node:crypto";

export async function currentProfessional(req) {
  return null; // e.g. const session = await getServerSession(req, res, authOptions); ...
}

function carriesLocalSecret(req) {
  const secret = process.env.LINKPRONTO_LOCAL_SECRET || "";
  const given = req.headers["x-linkpronto-local"];
  if (!secret || typeof given !== "string") return false;
  const a = Buffer.from(given);
  const b = Buffer.from(secret);
  return a.length === b.length && crypto.timingSafeEqual(a, b);
}

export function isLocalRequest(req) {
  if (req.headers["x-linkpronto-via"] !== undefined) return false;
  const addr = String(req.socket?.remoteAddress || "").replace(/^::ffff:/, "");
  const loopback = addr === "::1" || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(addr);
  return loopback || carriesLocalSecret(req);
}

export async function requireProfessional(req, res) {
  const professional = await currentProfessional(req);
  if (professional) return professional;
  if (isLocalRequest(req)) return { id: null };
  res.status(401).json({ success: false, error: "Faça login como profissional.", code: "UNAUTHORIZED" });
  return null;
}
