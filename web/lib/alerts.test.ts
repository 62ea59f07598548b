import { describe, expect, it } from "vitest";
import { buildRuleSpec, describeCondition, EMPTY_RULE_FORM, ruleToForm } from "@/lib/alerts";
import type { Schemas } from "@/lib/api/client";
import { keyFromFragment } from "@/lib/api-key";
import { qualityFlags } from "@/lib/quality";
import { problemMessage } from "@/lib/api/client";

describe("buildRuleSpec", () => {
  it("builds a regime-change rule with the SSE channel", () => {
    const result = buildRuleSpec({ ...EMPTY_RULE_FORM, name: " spx-turbulence ", toRegimes: "2", symbols: "spx, ixic", confirmBars: "2" });
    expect(result).toEqual({
      spec: {
        name: "spx-turbulence",
        condition: { kind: "regime_change", model: "hmm", to_regimes: [2], from_regimes: null, min_probability: 0.5, confirm_bars: 2 },
        symbols: ["SPX", "IXIC"],
        watchlist: false,
        channels: [{ type: "sse" }],
        cooldown_seconds: 0,
        severity: "warning",
        enabled: true,
      },
    });
  });

  it("names every invalid field", () => {
    const result = buildRuleSpec({ ...EMPTY_RULE_FORM, name: "", symbols: "", toRegimes: "x", minProbability: "2", webhookUrl: "ftp://x" });
    expect("errors" in result && Object.keys(result.errors).sort()).toEqual(["minProbability", "name", "symbols", "toRegimes", "webhookUrl"]);
  });

  it("round-trips a stored rule through the form", () => {
    const rule = {
      id: 1,
      name: "dd",
      condition: { kind: "drawdown", threshold_pct: 15, lookback_bars: null },
      symbols: ["SPX"],
      watchlist: false,
      channels: [{ type: "sse" }, { type: "webhook", url: "https://hooks.example.com/x" }],
      cooldown_seconds: 60,
      severity: "critical",
      enabled: true,
    } as unknown as Schemas["AlertRule"];
    const again = buildRuleSpec(ruleToForm(rule));
    expect("spec" in again && again.spec).toMatchObject({
      condition: { kind: "drawdown", threshold_pct: 15, lookback_bars: null },
      channels: [{ type: "sse" }, { type: "webhook", url: "https://hooks.example.com/x" }],
      cooldown_seconds: 60,
      severity: "critical",
    });
    expect(describeCondition(rule.condition)).toBe("drawdown > 15%");
  });
});

describe("small shapers", () => {
  it("reads the key from a URL fragment", () => {
    expect(keyFromFragment("#key=rl_ab12_xyz")).toBe("rl_ab12_xyz");
    expect(keyFromFragment("#other=1")).toBeNull();
    expect(keyFromFragment("")).toBeNull();
  });

  it("lists non-zero data-quality counters", () => {
    expect(qualityFlags({ rows_invalid: 0, calendar_gaps: 2, gap_examples: ["2018-01-02"], rejected: { negative_volume: 3 } })).toEqual([
      { name: "calendar gaps", count: 2, severity: "warn", detail: "e.g. 2018-01-02" },
      { name: "rejected negative volume", count: 3, severity: "bad" },
    ]);
    expect(qualityFlags(null)).toEqual([]);
  });

  it("renders a problem document as one line", () => {
    expect(
      problemMessage({ title: "Bad Request", status: 400, detail: "invalid input", errors: [{ field: "limit", source: "query", message: "Expected int" }] }),
    ).toBe("invalid input (limit: Expected int)");
    expect(problemMessage(null)).toBeNull();
  });
});
