// The app's data (stands in for its database): professionals by public slug.
export const PROFESSIONALS = {
  "dra-ana": { id: "pro-1", slug: "dra-ana", name: "Dra. Ana Souza", specialty: "Psicoterapia" },
  "dr-bruno": { id: "pro-2", slug: "dr-bruno", name: "Dr. Bruno Lima", specialty: "Psicologia infantil" },
};

export function professionalBySlug(slug) {
  return PROFESSIONALS[String(slug || "").toLowerCase()] || null;
}
