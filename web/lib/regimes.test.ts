import { describe, expect, it } from "vitest";
import type { Schemas } from "@/lib/api/client";
import { buildHeatmap, cellKey, modelsWithRuns, regimeBands, regimeColor, regimeSwitches, toChartTime, withAlpha } from "@/lib/regimes";

const label = (ts: string, regime: number): Schemas["RegimeLabel"] => ({
  ts,
  regime,
  name: null,
  probability: 0.9,
  probs: [],
  run_id: 1,
});

describe("regime colours", () => {
  it("run from green (calm) to red (turbulent) whatever the number of regimes", () => {
    expect(regimeColor(0, 3)).toBe("#16a34a");
    expect(regimeColor(2, 3)).toBe("#dc2626");
    expect(regimeColor(0, 2)).toBe("#16a34a");
    expect(regimeColor(1, 2)).toBe("#dc2626");
    expect(regimeColor(7, 3)).toBe("#dc2626"); // clamped
  });

  it("adds an alpha channel", () => {
    expect(withAlpha("#16a34a", 0.5)).toBe("#16a34a80");
    expect(withAlpha("#16a34a", 2)).toBe("#16a34aff");
  });
});

describe("buildHeatmap", () => {
  const now = (symbol: string, regime: number, days: number): Schemas["RegimeNow"] => ({
    symbol,
    ts: "2018-12-31T00:00:00Z",
    regime,
    name: regime === 2 ? "turbulent" : "calm",
    probability: 0.65,
    days_in_regime: days,
    n_states: 3,
    run_id: 1,
  });

  it("lays snapshots out as symbol × model with change markers", () => {
    const heatmap = buildHeatmap([
      { model: "hmm", items: [now("SPX", 2, 4), now("IXIC", 0, 40)], missing: [] },
      { model: "rules", items: [now("SPX", 0, 10)], missing: ["IXIC"] },
    ]);
    expect(heatmap.symbols).toEqual(["SPX", "IXIC"]);
    expect(heatmap.models).toEqual(["hmm", "rules"]);
    expect(heatmap.cells.get(cellKey("SPX", "hmm"))).toMatchObject({ regime: 2, changed: true, color: "#dc2626" });
    expect(heatmap.cells.get(cellKey("IXIC", "hmm"))?.changed).toBe(false);
    expect(heatmap.cells.has(cellKey("IXIC", "rules"))).toBe(false);
    expect(heatmap.missing).toEqual([{ symbol: "IXIC", model: "rules" }]);
  });

  it("keeps watchlist symbols that have no labels yet", () => {
    expect(buildHeatmap([], ["SPX"]).symbols).toEqual(["SPX"]);
  });
});

describe("chart shaping", () => {
  const labels = [label("2018-01-02T00:00:00Z", 0), label("2018-01-03T00:00:00Z", 0), label("2018-01-04T00:00:00Z", 2), label("2018-01-05T00:00:00Z", 1)];

  it("converts ISO timestamps to UTC seconds", () => {
    expect(toChartTime("2018-01-02T00:00:00Z")).toBe(1514851200);
  });

  it("gives one translucent band per labelled bar", () => {
    const bands = regimeBands(labels, 3, 0.2);
    expect(bands).toHaveLength(4);
    expect(bands[2]).toEqual({ time: 1515024000, regime: 2, color: "#dc262633" });
  });

  it("finds the switches between regimes", () => {
    expect(regimeSwitches(labels).map((s) => [s.from, s.to])).toEqual([
      [null, 0],
      [0, 2],
      [2, 1],
    ]);
  });
});

describe("modelsWithRuns", () => {
  it("lists models with a succeeded run, newest first, once each", () => {
    const run = (model: string, status: string, created_at: string) =>
      ({ model, status, created_at }) as Schemas["RegimeRunSummary"];
    expect(
      modelsWithRuns([
        run("hmm", "succeeded", "2026-01-01T00:00:00Z"),
        run("rules", "succeeded", "2026-01-03T00:00:00Z"),
        run("jump", "failed", "2026-01-04T00:00:00Z"),
        run("hmm", "succeeded", "2026-01-02T00:00:00Z"),
      ]),
    ).toEqual(["rules", "hmm"]);
  });
});
