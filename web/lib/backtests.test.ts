import { describe, expect, it } from "vitest";
import { drawdown, formatMetric, heatColor, metricColumns, parseGrid, rebase, sweepGrid } from "@/lib/backtests";

describe("drawdown", () => {
  it("is equity over its running peak, minus one", () => {
    expect(drawdown([100, 110, 99, null, 121])).toEqual([0, 0, 99 / 110 - 1, null, 0]);
  });
});

describe("rebase", () => {
  it("rescales a benchmark to the strategy's starting equity from its first date", () => {
    const closes = [
      { ts: "2018-01-01T00:00:00Z", close: 50 },
      { ts: "2018-01-02T00:00:00Z", close: 100 },
      { ts: "2018-01-03T00:00:00Z", close: 150 },
    ];
    expect(rebase(closes, "2018-01-02T00:00:00Z", 1000).map((p) => p.value)).toEqual([1000, 1500]);
    expect(rebase([], "2018-01-02T00:00:00Z", 1000)).toEqual([]);
  });
});

describe("parseGrid", () => {
  it("reads lists, ranges and scalars", () => {
    expect(parseGrid("fast=10,20,50; slow=100:200:50\nshort=true,false")).toEqual({
      fast: [10, 20, 50],
      slow: [100, 150, 200],
      short: [true, false],
    });
    expect(parseGrid("  ")).toEqual({});
  });

  it("says what is wrong", () => {
    expect(() => parseGrid("fast")).toThrow(/name=v1,v2/);
    expect(() => parseGrid("fast=1:5:0")).toThrow(/step/);
  });
});

describe("metrics", () => {
  it("puts the key metrics first and formats percentages", () => {
    expect(metricColumns([{ trades: 3, sharpe: 1.2, alpha: 0.1, start: "2018" }])).toEqual(["sharpe", "trades", "alpha"]);
    expect(formatMetric("total_return", 1.8148)).toBe("181.48%");
    expect(formatMetric("sharpe", 0.5219)).toBe("0.522");
    expect(formatMetric("trades", 13)).toBe("13");
    expect(formatMetric("sharpe", null)).toBe("—");
  });
});

describe("sweepGrid", () => {
  const result = (fast: number, slow: number, sharpe: number) => ({ params: { fast, slow, kind: "sma" }, metrics: { sharpe } });

  it("lays a two-parameter sweep out as a numeric grid", () => {
    const grid = sweepGrid([result(20, 100, 0.2), result(10, 100, 0.3), result(10, 200, 0.45), result(20, 200, 0.5)], ["fast", "slow"], "sharpe");
    expect(grid).toMatchObject({ xs: ["10", "20"], ys: ["100", "200"], min: 0.2, max: 0.5 });
    expect(grid?.values).toEqual([
      [0.3, 0.2],
      [0.45, 0.5],
    ]);
  });

  it("is null for other shapes", () => {
    expect(sweepGrid([result(10, 100, 1)], ["fast", "slow"], "sharpe")).toBeNull();
    expect(sweepGrid([result(10, 100, 1), result(20, 100, 1)], ["fast"], "sharpe")).toBeNull();
  });

  it("colours low red and high green", () => {
    expect(heatColor(0, 0, 1)).toBe("hsl(0 70% 45%)");
    expect(heatColor(1, 0, 1)).toBe("hsl(120 70% 45%)");
    expect(heatColor(null, 0, 1)).toBe("transparent");
  });
});
