// No allowedDevOrigins and no NEXT_PUBLIC_* edits: linkpronto's gateway shows `next dev` its own
// Host/Origin, and the URLs come from the environment linkpronto gives the app (restarted on change).
/** @type {import('next').NextConfig} */
module.exports = { reactStrictMode: true };
