import { useEffect, useState } from "react";
import ShareConsultationLink from "../components/ShareConsultationLink";

export default function Home() {
  const [professionalId, setProfessionalId] = useState("dra-ana");
  const [consultationType, setConsultationType] = useState("psicoterapia");
  const [hydrated, setHydrated] = useState(false);
  useEffect(() => setHydrated(true), []);
  return (
    <main data-hydrated={hydrated ? "1" : "0"} style={{ fontFamily: "system-ui, sans-serif", maxWidth: 640, margin: "2rem auto", padding: "0 1rem" }}>
      <h1>Consultas online</h1>
      <label>
        Profissional <input id="professional-id" value={professionalId} onChange={(e) => setProfessionalId(e.target.value)} />
      </label>{" "}
      <label>
        Tipo <input id="consultation-type" value={consultationType} onChange={(e) => setConsultationType(e.target.value)} />
      </label>
      <ShareConsultationLink professionalId={professionalId} clientId="paciente-1" consultationType={consultationType} />
    </main>
  );
}
