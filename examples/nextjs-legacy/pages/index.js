import Link from "next/link";
import { PROFESSIONALS } from "../lib/professionals";

export default function Home() {
  return (
    <main style={{ fontFamily: "system-ui, sans-serif", maxWidth: 640, margin: "2rem auto", padding: "0 1rem" }}>
      <h1>Consultas online</h1>
      <ul>
        {Object.values(PROFESSIONALS).map((p) => (
          <li key={p.slug}><Link href={`/professional/${p.slug}`}>{p.name}</Link></li>
        ))}
      </ul>
    </main>
  );
}
