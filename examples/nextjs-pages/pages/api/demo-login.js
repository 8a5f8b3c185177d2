// DEMO ONLY: stands in for your real login. Sets the signed cookie lib/auth.js accepts.
import { sessionCookie } from "../../lib/auth";

export default function handler(req, res) {
  if (req.method !== "POST") return res.status(405).end();
  const password = process.env.DEMO_PASSWORD;
  const { professionalId, password: given } = req.body || {};
  if (!password || given !== password || !professionalId) {
    return res.status(401).json({ success: false, error: "Login inválido." });
  }
  res.setHeader("Set-Cookie", sessionCookie(String(professionalId)));
  return res.status(200).json({ success: true });
}
