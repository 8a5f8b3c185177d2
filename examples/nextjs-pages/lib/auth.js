// THE APP'S OWN AUTHENTICATION GOES HERE.
//
// Every request that comes through linkpronto's public address (the tunnel) carries
// `X-Linkpronto-Via: public` — linkpronto sets it and replaces any copy a client sends. Such a request
// comes from the internet: it may only do professional things (create consultation links, mint a
// LiveKit token for a room) when YOUR authentication says a professional is logged in.
// "This computer" is decided by proof, never by a missing header: the request does not carry the
// public marker AND either the socket's peer is loopback (127.0.0.0/8, ::1) or it carries
// `X-Linkpronto-Local` equal to LINKPRONTO_LOCAL_SECRET — a secret linkpronto makes at each start and
// hands only to this app's environment (for code on this computer whose calls do not arrive from
// loopback: the app in a container or WSL2, a local reverse proxy); the public gateway drops every
// client copy of that header. A phone or laptop on the same Wi-Fi calling this dev server directly
// (next dev listens on every interface unless -H 127.0.0.1, which `linkpronto up --app` adds) is NOT
// local.
//
// Replace `currentProfessional` with your real check, for example:
//   const session = await getServerSession(req, res, authOptions);   // NextAuth
//   return session?.user?.role === "professional" ? { id: session.user.id } : null;
// This demo accepts a signed cookie set by /api/demo-login (never use it in production).
import crypto from "node:crypto";

const SECRET = (globalThis.__demoAuthSecret ||= process.env.DEMO_AUTH_SECRET || crypto.randomBytes(32).toString("hex"));

function sign(value) {
  return crypto.createHmac("sha256", SECRET).update(value).digest("base64url");
}

export function sessionCookie(professionalId) {
  const value = `${encodeURIComponent(professionalId)}.${sign(professionalId)}`;
  return `demo_session=${value}; Path=/; HttpOnly; SameSite=Lax`;
}

export async function currentProfessional(req) {
  const match = /(?:^|;\s*)demo_session=([^;]+)/.exec(req.headers.cookie || "");
  if (!match) return null;
  const [id, mac] = match[1].split(".");
  const professionalId = decodeURIComponent(id || "");
  if (!professionalId || !mac) return null;
  const expected = Buffer.from(sign(professionalId));
  const given = Buffer.from(mac);
  return expected.length === given.length && crypto.timingSafeEqual(expected, given) ? { id: professionalId } : null;
}

export function viaPublicAddress(req) {
  return req.headers["x-linkpronto-via"] !== undefined; // any copy: only linkpronto's gateway sets it
}

function loopbackPeer(req) {
  const addr = String(req.socket?.remoteAddress || "");
  const v4 = addr.startsWith("::ffff:") ? addr.slice(7) : addr;
  return v4 === "::1" || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(v4);
}

function carriesLocalSecret(req) {
  const secret = process.env.LINKPRONTO_LOCAL_SECRET || "";
  const given = req.headers["x-linkpronto-local"];
  if (!secret || typeof given !== "string") return false;
  const a = Buffer.from(given);
  const b = Buffer.from(secret);
  return a.length === b.length && crypto.timingSafeEqual(a, b);
}

/** The header that proves a server-side caller on this computer (send it only from server code). */
export function localHeaders() {
  const secret = process.env.LINKPRONTO_LOCAL_SECRET;
  return secret ? { "X-Linkpronto-Local": secret } : {};
}

/** A request from this computer, straight to this dev server (proved, not assumed). */
export function isLocalRequest(req) {
  return !viaPublicAddress(req) && (loopbackPeer(req) || carriesLocalSecret(req));
}

/**
 * The guard for professional-only API routes. Returns the professional (or `{ id: null }` for a local
 * request on this computer), or answers 401 and returns null.
 */
export async function requireProfessional(req, res) {
  const professional = await currentProfessional(req); // <- your auth check
  if (professional) return professional;
  if (isLocalRequest(req)) return { id: null }; // this computer (loopback peer, not via the tunnel)
  res.status(401).json({
    success: false,
    error: "Faça login como profissional para gerar links de consulta.",
    code: "UNAUTHORIZED",
  });
  return null;
}
