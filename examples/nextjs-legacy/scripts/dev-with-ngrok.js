// The seed's orchestration script (kept as it was): starts ngrok for 3001 and 7880, then asks you to copy
// both URLs into .env.local and restart `next dev`. Removed by the migration (linkpronto does all of it).
const { spawn } = require("node:child_process");

for (const port of ["3001", "7880"]) {
  const child = spawn("ngrok", ["http", port], { stdio: "inherit" });
  child.on("exit", (code) => console.log(`ngrok ${port} exited with ${code}`));
}
console.log("Copie as URLs do ngrok para NEXT_PUBLIC_SITE_URL e NEXT_PUBLIC_LIVEKIT_URL em .env.local e reinicie o next dev.");
