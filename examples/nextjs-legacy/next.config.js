/** @type {import('next').NextConfig} */
module.exports = {
  reactStrictMode: true,
  // The ngrok host, so `next dev` serves its dev assets to the phone (edited by scripts/dev-with-ngrok.js).
  allowedDevOrigins: ["*.ngrok-free.app"],
};
