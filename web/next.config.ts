import path from "node:path";
import type { NextConfig } from "next";

// REGIMELAB_WEB_EXPORT=1 writes a static export to out/ that the API serves on its own
// origin (`regimelab up`, api/server/web.py); the default build is the container's
// self-contained server.
const staticExport = process.env.REGIMELAB_WEB_EXPORT === "1";

const nextConfig: NextConfig = {
  output: staticExport ? "export" : "standalone",
  // Pin the tracing root to web/ so standalone/server.js sits at the top of
  // the output even though the repository root holds other lockfiles.
  outputFileTracingRoot: path.join(__dirname),
  poweredByHeader: false,
  images: { unoptimized: true },
  // The standalone server proxies the API so the browser calls one origin, as under `up`.
  ...(staticExport
    ? {}
    : {
        async rewrites() {
          const api = (process.env.REGIMELAB_API_URL ?? "http://127.0.0.1:8000").replace(/\/+$/, "");
          return [
            { source: "/api/:path*", destination: `${api}/api/:path*` },
            { source: "/health", destination: `${api}/health` },
          ];
        },
      }),
};

export default nextConfig;
