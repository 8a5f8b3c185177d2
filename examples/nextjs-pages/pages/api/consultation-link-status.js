// For the share component while a link is "preparing": linkpronto makes it ready by itself.
import { requireProfessional } from "../../lib/auth";
import { linkpronto } from "../../lib/linkpronto";

export default async function handler(req, res) {
  const professional = await requireProfessional(req, res);
  if (!professional) return;
  const id = String(req.query.id || "");
  if (!/^[A-Za-z0-9_-]{1,64}$/.test(id)) return res.status(400).json({ success: false, error: "id inválido" });
  const { status, data } = await linkpronto(`/api/consultation-links/${id}`);
  if (status !== 200) return res.status(status).json({ success: false, error: data?.error?.message || "erro" });
  return res.status(200).json({ status: data.status, url: data.url, room: data.room });
}
