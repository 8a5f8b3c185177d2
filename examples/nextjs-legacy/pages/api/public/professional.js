// The patient page's data call: who the patient is meeting (public, read-only).
import { professionalBySlug } from "../../../lib/professionals";

export default function handler(req, res) {
  const professional = professionalBySlug(req.query.slug);
  if (!professional) return res.status(404).json({ error: "Profissional não encontrado" });
  return res.status(200).json({ name: professional.name, specialty: professional.specialty });
}
