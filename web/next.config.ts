import path from "node:path";
import type { NextConfig } from "next";

const nextConfig: NextConfig = {
  // The Docker image runs the self-contained server from .next/standalone.
  output: "standalone",
  // Pin the tracing root to web/ so standalone/server.js sits at the top of
  // the output even though the repository root holds other lockfiles.
  outputFileTracingRoot: path.join(__dirname),
  poweredByHeader: false,
};

export default nextConfig;
