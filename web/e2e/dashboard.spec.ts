import { choose, expect, screenshot, test } from "./fixtures";

test.describe.configure({ mode: "serial" });

test("overview shows the SPX and IXIC regimes", async ({ page, consoleErrors }) => {
  await page.goto("/");
  // Time from navigation start to both regimes on screen, read in the page (no polling lag).
  const firstLoadMs = await page
    .waitForFunction(
      () =>
        document.querySelector('[data-testid="regime-cell"][data-symbol="SPX"]') &&
        document.querySelector('[data-testid="regime-cell"][data-symbol="IXIC"]')
          ? performance.now()
          : null,
      null,
      { polling: "raf", timeout: 15_000 },
    )
    .then((handle) => handle.jsonValue() as Promise<number>);
  const timing = await page.evaluate(() => {
    const nav = performance.getEntriesByType("navigation")[0] as PerformanceNavigationTiming | undefined;
    return nav ? { domContentLoaded: nav.domContentLoadedEventEnd, load: nav.loadEventEnd } : null;
  });
  console.log(
    `overview first load: ${firstLoadMs.toFixed(0)} ms from navigation to SPX and IXIC regimes on screen` +
      (timing ? ` (DOMContentLoaded ${timing.domContentLoaded.toFixed(0)} ms, load ${timing.load.toFixed(0)} ms)` : ""),
  );
  const cells = page.getByTestId("regime-cell");
  await expect(cells.first()).toContainText(/\d+ days/);
  await expect(cells.first()).toContainText(/p \d+%/);
  await expect(page.getByTestId("last-ingest")).toContainText("succeeded");
  await screenshot(page, "overview");
  expect(consoleErrors).toEqual([]);
});

test("the key in the URL fragment signs a fresh browser in", async ({ browser }) => {
  const context = await browser.newContext();
  const page = await context.newPage();
  // the key `regimelab up` printed in its dashboard URL (or the e2e key)
  const key = process.env.REGIMELAB_E2E_FRAGMENT_KEY || process.env.REGIMELAB_E2E_API_KEY || "";
  await page.goto(`/#key=${key}`);
  await expect(page.locator('[data-testid="regime-cell"][data-symbol="SPX"]').first()).toBeVisible();
  expect(page.url()).not.toContain("#key=");
  await context.close();
});

test("instrument chart with regime bands", async ({ page }) => {
  await page.goto("/instrument?symbol=SPX&model=hmm");
  await expect(page.getByRole("heading", { level: 1 })).toContainText("SPX");
  const chart = page.getByTestId("price-chart");
  await expect(chart.locator("canvas").first()).toBeVisible();
  await expect(page.getByTestId("current-regime")).toContainText(/now: \d/);
  await expect(page.getByRole("table", { name: "Regime statistics" }).getByRole("row")).toHaveCount(4);
  await expect(page.getByTestId("forecast")).toBeVisible();
  await expect(page.getByRole("table", { name: "Features" })).toBeVisible();
  // periods like today (analogs, embedded by `up`) and the fan of what followed them
  await expect(page.getByTestId("analogs-fan")).toBeVisible();
  await expect(page.getByRole("table", { name: "Analog outcomes by horizon" })).toContainText("+63 bars");
  await page.waitForTimeout(300); // let the chart paint its last frame
  await screenshot(page, "instrument");
});

test("run a small backtest sweep and see its metrics", async ({ page }) => {
  await page.goto("/backtests");
  await expect(page.getByRole("combobox", { name: "Strategy" })).toContainText("sma_crossover");
  await page.getByLabel("Symbols").fill("SPX");
  await page.getByLabel("Grid (sweep)").fill("fast=10,20; slow=100,200");
  await choose(page, "Regime model for per-regime metrics", "hmm");
  await page.getByRole("button", { name: "Run backtest" }).click();
  const detail = page.getByTestId("backtest-detail");
  await expect(detail.getByTestId("result-row")).toHaveCount(4, { timeout: 45_000 });
  await expect(detail.locator('[data-metric="sharpe"]').first()).toHaveText(/^-?\d+\.\d{3}$/);
  await expect(detail.locator('[data-metric="total_return"]').first()).toHaveText(/%$/);
  await expect(page.getByTestId("equity-chart").locator("canvas").first()).toBeVisible();
  await expect(page.getByTestId("drawdown-chart").locator("canvas").first()).toBeVisible();
  await expect(page.getByTestId("sweep-heatmap")).toBeVisible();
  await expect(page.getByRole("table", { name: "Metrics per regime" }).getByRole("row")).not.toHaveCount(1);
  await page.waitForTimeout(300);
  await screenshot(page, "backtests");
});

test("create an alert rule, preview it, and receive a live event", async ({ page }) => {
  const name = `e2e-spx-drawdown-${Date.now()}`;
  await page.goto("/alerts");
  await expect(page.getByTestId("stream-status")).toContainText("live");
  await page.getByLabel("Name").fill(name);
  await choose(page, "Condition", "Drawdown");
  await page.getByLabel("Threshold %").fill("15");
  await page.getByLabel("Severity").click();
  await page.getByRole("option", { name: "critical" }).click();
  await page.getByRole("button", { name: "Preview" }).click();
  await expect(page.getByTestId("backfill-preview")).toContainText(/Would have fired [1-9]\d* time/);
  await page.getByRole("button", { name: "Create rule" }).click();
  const row = page.getByTestId("rule-row").filter({ hasText: name });
  await expect(row).toBeVisible();
  await expect(row).toContainText("drawdown > 15%");

  await page.getByRole("button", { name: `Send a test of ${name}` }).click();
  const event = page.getByTestId("live-event").filter({ hasText: name });
  await expect(event).toBeVisible();
  await expect(event).toContainText("[TEST]");
  // the feed's own toast (title "[TEST] <rule> · <symbol>"), not the "Test sent" confirmation
  await expect(page.locator("[data-sonner-toast]").filter({ hasText: `[TEST] ${name}` }).first()).toBeAttached();
  await page.getByRole("button", { name: "Evaluate now" }).click();
  await screenshot(page, "alerts");
});

test("data page: providers, TTLs, ingest runs and jobs", async ({ page }) => {
  await page.goto("/data");
  await expect(page.getByRole("table", { name: "Provider TTLs" })).toContainText("sample");
  await expect(page.getByTestId("ingest-row").first()).toContainText("sample");
  await expect(page.getByRole("table", { name: "Scheduled jobs" })).toContainText("alerts.evaluate");
  // TTLs are editable (admin key): set one, see it stored in the table, then reset it
  const ttl = page.getByLabel("TTL seconds of yahoo bars", { exact: true });
  await ttl.fill("600");
  await page.getByRole("button", { name: "Save TTL seconds of yahoo bars" }).click();
  const row = page.getByRole("row").filter({ has: page.getByLabel("TTL seconds of yahoo bars", { exact: true }) });
  await expect(row).toContainText("table");
  await expect(row).toContainText("10m");
  await screenshot(page, "data");
  await page.getByRole("button", { name: "Reset TTL seconds of yahoo bars" }).click();
  await expect(row).toContainText("default");
});

test("settings page: key and theme", async ({ page }) => {
  await page.goto("/settings");
  await expect(page.getByTestId("api-key-status")).toContainText("Using key");
  await page.getByRole("tab", { name: "Dark" }).click();
  await expect(page.locator("html")).toHaveClass(/dark/);
  await screenshot(page, "settings-dark");
  await page.goto("/");
  await expect(page.locator('[data-testid="regime-cell"][data-symbol="SPX"]').first()).toBeVisible();
  await screenshot(page, "overview-dark");
});

test("overview on a phone-sized screen", async ({ page }) => {
  await page.setViewportSize({ width: 390, height: 844 });
  await page.goto("/");
  await expect(page.locator('[data-testid="regime-cell"][data-symbol="IXIC"]').first()).toBeVisible();
  await expect(page.getByRole("navigation", { name: "Main" })).toBeVisible();
  await screenshot(page, "overview-phone");
});
