import { defineConfig } from "@playwright/test";

// Runs against a live `regimelab up` (tests/integration/web/test_dashboard_e2e.py starts one):
// REGIMELAB_E2E_BASE_URL, REGIMELAB_E2E_API_KEY and CHROMIUM_PATH come from there.
export default defineConfig({
  testDir: "./e2e",
  outputDir: "./test-results/playwright",
  fullyParallel: false,
  workers: 1,
  retries: 0,
  timeout: 60_000,
  expect: { timeout: 15_000 },
  reporter: [["list"]],
  use: {
    baseURL: process.env.REGIMELAB_E2E_BASE_URL ?? "http://127.0.0.1:8000",
    headless: true,
    viewport: { width: 1440, height: 1000 },
    launchOptions: {
      executablePath: process.env.CHROMIUM_PATH ?? "/usr/bin/chromium",
      args: ["--no-sandbox", "--disable-dev-shm-usage"],
    },
    trace: "retain-on-failure",
    screenshot: "only-on-failure",
  },
});
