import { describe, expect, it } from "vitest";
import { fanGeometry, niceStep } from "@/lib/analogs";

const fanPoint = (offset: number, median: number) => ({
  offset,
  count: 10,
  q10: median - 0.02,
  q25: median - 0.01,
  median,
  q75: median + 0.01,
  q90: median + 0.02,
});

describe("fanGeometry", () => {
  const result = {
    query_path: [
      { offset: -2, value: 0.1 },
      { offset: -1, value: 0.05 },
      { offset: 0, value: 0 },
    ],
    fan: [fanPoint(0, 0), fanPoint(1, 0.01), fanPoint(2, 0.02)],
  };

  it("puts today in the middle and the query path before it", () => {
    const g = fanGeometry(result, 100, 100, { left: 0, right: 0, top: 0, bottom: 0 });
    expect(g).not.toBeNull();
    expect(g!.zeroX).toBe(50);
    expect(g!.query.startsWith("M0.0,")).toBe(true);
    expect(g!.query.split("L")).toHaveLength(3);
    expect(g!.outer.endsWith("Z")).toBe(true);
    expect(g!.median.split("L")).toHaveLength(3);
    expect(g!.xTicks.map((t) => t.label)).toEqual(["-2", "today", "+2"]);
  });

  it("maps the highest value to the top", () => {
    const g = fanGeometry(result, 100, 100, { left: 0, right: 0, top: 0, bottom: 0 })!;
    expect(g.query.startsWith("M0.0,0.0")).toBe(true); // 0.1 is the maximum
  });

  it("is null without any point", () => {
    expect(fanGeometry({ query_path: [], fan: [] }, 100, 100)).toBeNull();
  });
});

describe("niceStep", () => {
  it("rounds up to 1, 2 or 5 times a power of ten", () => {
    expect(niceStep(0.03)).toBeCloseTo(0.05);
    expect(niceStep(0.012)).toBeCloseTo(0.02);
    expect(niceStep(7)).toBe(10);
    expect(niceStep(0)).toBe(1);
  });
});
