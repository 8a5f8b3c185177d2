// Who may do professional things (create links, mint a LiveKit token). Replace `currentProfessional`
// with the app's real login check. "This computer" is proved, never assumed from a missing header: the
// socket peer is loopback AND the request does not carry linkpronto's `X-Linkpronto-Via` (set on every
// request that came through the public address, a client's own copy replaced).
export async function currentProfessional(req) {
  return null; // e.g. const session = await getServerSession(req, res, authOptions); ...
}

export function isLocalRequest(req) {
  const addr = String(req.socket?.remoteAddress || "").replace(/^::ffff:/, "");
  const loopback = addr === "::1" || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(addr);
  return loopback && req.headers["x-linkpronto-via"] === undefined;
}

export async function requireProfessional(req, res) {
  const professional = await currentProfessional(req);
  if (professional) return professional;
  if (isLocalRequest(req)) return { id: null };
  res.status(401).json({ success: false, error: "Faça login como profissional.", code: "UNAUTHORIZED" });
  return null;
}
