// linkpronto's admin API, from the server side only: LINKPRONTO_ADMIN_URL and LINKPRONTO_ADMIN_TOKEN are
// in this app's environment when it runs under `linkpronto up --app ...` (never sent to a browser).
export async function linkpronto(path, { method = "GET", body } = {}) {
  const base = process.env.LINKPRONTO_ADMIN_URL;
  const token = process.env.LINKPRONTO_ADMIN_TOKEN;
  if (!base || !token) {
    return {
      status: 503,
      data: {
        success: false,
        error: "O linkpronto não está rodando com este app (LINKPRONTO_ADMIN_URL ausente).",
        code: "NOT_RUNNING",
        fix: 'Rode: linkpronto up --app "npx next dev -p 3001" --app-port 3001',
      },
    };
  }
  const res = await fetch(base + path, {
    method,
    headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: res.status, data: await res.json().catch(() => ({})) };
}
