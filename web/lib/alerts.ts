import type { Schemas } from "@/lib/api/client";

export type ConditionKind = Schemas["AlertRuleSpec"]["condition"]["kind"];
export type Severity = Schemas["AlertRuleSpec"]["severity"];

export const CONDITION_KINDS: { kind: ConditionKind; label: string }[] = [
  { kind: "regime_change", label: "Regime change" },
  { kind: "threshold", label: "Feature threshold" },
  { kind: "drawdown", label: "Drawdown" },
  { kind: "volatility_spike", label: "Volatility spike" },
  { kind: "signal_change", label: "Signal change" },
];

/** The rule form's fields, all as typed text (validated by `buildRuleSpec`). */
export interface RuleForm {
  name: string;
  kind: ConditionKind;
  symbols: string;
  watchlist: boolean;
  severity: Severity;
  cooldownSeconds: string;
  sse: boolean;
  webhookUrl: string;
  // regime_change
  model: string;
  toRegimes: string;
  fromRegimes: string;
  minProbability: string;
  confirmBars: string;
  // threshold
  feature: string;
  op: "above" | "below" | "crosses_above" | "crosses_below";
  value: string;
  hysteresis: string;
  // drawdown
  thresholdPct: string;
  lookbackBars: string;
  // volatility_spike
  window: string;
  baseline: string;
  z: string;
  // signal_change
  strategy: string;
  minChange: string;
}

export const EMPTY_RULE_FORM: RuleForm = {
  name: "",
  kind: "regime_change",
  symbols: "SPX",
  watchlist: false,
  severity: "warning",
  cooldownSeconds: "0",
  sse: true,
  webhookUrl: "",
  model: "hmm",
  toRegimes: "",
  fromRegimes: "",
  minProbability: "0.5",
  confirmBars: "1",
  feature: "close",
  op: "crosses_above",
  value: "",
  hysteresis: "0",
  thresholdPct: "10",
  lookbackBars: "",
  window: "20",
  baseline: "252",
  z: "2",
  strategy: "",
  minChange: "0",
};

export type FieldErrors = Partial<Record<keyof RuleForm, string>>;

function intList(text: string): number[] | null | undefined {
  const parts = text
    .split(",")
    .map((p) => p.trim())
    .filter(Boolean);
  if (parts.length === 0) return null;
  const numbers = parts.map(Number);
  return numbers.every((n) => Number.isInteger(n) && n >= 0) ? numbers : undefined;
}

/** A validated rule for the API, or the errors per form field. */
export function buildRuleSpec(form: RuleForm): { spec: Schemas["AlertRuleSpec"] } | { errors: FieldErrors } {
  const errors: FieldErrors = {};
  const number = (field: keyof RuleForm, check: (n: number) => boolean, message: string): number => {
    const raw = String(form[field]).trim();
    const n = Number(raw);
    if (raw === "" || !Number.isFinite(n) || !check(n)) errors[field] = message;
    return n;
  };
  const name = form.name.trim();
  if (!name) errors.name = "A rule needs a name.";
  else if (name.length > 100) errors.name = "At most 100 characters.";
  const symbols = form.symbols
    .split(",")
    .map((s) => s.trim().toUpperCase())
    .filter(Boolean);
  if (!form.watchlist && symbols.length === 0) errors.symbols = "Name symbols or watch the watchlist.";
  const cooldown = number("cooldownSeconds", (n) => Number.isInteger(n) && n >= 0, "Whole seconds, 0 or more.");
  const confirm = () => number("confirmBars", (n) => Number.isInteger(n) && n >= 1 && n <= 1000, "1 to 1000 bars.");

  let condition: Schemas["AlertRuleSpec"]["condition"] | null = null;
  switch (form.kind) {
    case "regime_change": {
      const to = intList(form.toRegimes);
      const from = intList(form.fromRegimes);
      if (to === undefined) errors.toRegimes = "Regime numbers, e.g. 2 or 1,2.";
      if (from === undefined) errors.fromRegimes = "Regime numbers, e.g. 0.";
      const p = number("minProbability", (n) => n >= 0 && n <= 1, "A probability from 0 to 1.");
      condition = {
        kind: "regime_change",
        model: form.model as Extract<Schemas["AlertRuleSpec"]["condition"], { kind: "regime_change" }>["model"],
        to_regimes: to ?? null,
        from_regimes: from ?? null,
        min_probability: p,
        confirm_bars: confirm(),
      };
      break;
    }
    case "threshold": {
      if (!form.feature.trim()) errors.feature = "A feature name, e.g. close or realized_vol_20d.";
      const value = number("value", () => true, "The level to compare with.");
      const hysteresis = number("hysteresis", (n) => n >= 0, "0 or more.");
      condition = { kind: "threshold", feature: form.feature.trim(), op: form.op, value, hysteresis, confirm_bars: confirm() };
      break;
    }
    case "drawdown": {
      const pct = number("thresholdPct", (n) => n > 0 && n < 100, "A percentage between 0 and 100.");
      const lookback = form.lookbackBars.trim()
        ? number("lookbackBars", (n) => Number.isInteger(n) && n >= 2, "2 bars or more, or empty for a running peak.")
        : null;
      condition = { kind: "drawdown", threshold_pct: pct, lookback_bars: lookback };
      break;
    }
    case "volatility_spike": {
      const window = number("window", (n) => Number.isInteger(n) && n >= 2 && n <= 1000, "2 to 1000 bars.");
      const baseline = number("baseline", (n) => Number.isInteger(n) && n >= 2 && n <= 10000, "2 to 10000 bars.");
      const z = number("z", (n) => n > 0, "A z-score above 0.");
      condition = { kind: "volatility_spike", window, baseline, z };
      break;
    }
    case "signal_change": {
      if (!form.strategy.trim()) errors.strategy = "The name of a saved strategy.";
      const minChange = number("minChange", (n) => n >= 0, "0 or more.");
      condition = { kind: "signal_change", strategy: form.strategy.trim(), min_change: minChange };
      break;
    }
  }
  const channels: NonNullable<Schemas["AlertRuleSpec"]["channels"]> = [];
  if (form.sse) channels.push({ type: "sse" });
  if (form.webhookUrl.trim()) {
    if (!/^https?:\/\/\S+$/.test(form.webhookUrl.trim())) errors.webhookUrl = "An http(s) URL.";
    else channels.push({ type: "webhook", url: form.webhookUrl.trim() });
  }
  if (Object.keys(errors).length > 0 || condition === null) return { errors };
  return {
    spec: {
      name,
      condition,
      symbols: form.watchlist ? [] : symbols,
      watchlist: form.watchlist,
      channels,
      cooldown_seconds: cooldown,
      severity: form.severity,
      enabled: true,
    },
  };
}

/** The form's fields for a stored rule (for editing). */
export function ruleToForm(rule: Schemas["AlertRule"]): RuleForm {
  const form: RuleForm = {
    ...EMPTY_RULE_FORM,
    name: rule.name,
    kind: rule.condition.kind,
    symbols: (rule.symbols ?? []).join(","),
    watchlist: rule.watchlist,
    severity: rule.severity,
    cooldownSeconds: String(rule.cooldown_seconds),
    sse: (rule.channels ?? []).some((c) => c.type === "sse"),
    webhookUrl: (rule.channels ?? []).flatMap((c) => (c.type === "webhook" ? [c.url] : []))[0] ?? "",
  };
  const c = rule.condition;
  switch (c.kind) {
    case "regime_change":
      return {
        ...form,
        model: c.model,
        toRegimes: (c.to_regimes ?? []).join(","),
        fromRegimes: (c.from_regimes ?? []).join(","),
        minProbability: String(c.min_probability),
        confirmBars: String(c.confirm_bars),
      };
    case "threshold":
      return { ...form, feature: c.feature, op: c.op, value: String(c.value), hysteresis: String(c.hysteresis), confirmBars: String(c.confirm_bars) };
    case "drawdown":
      return { ...form, thresholdPct: String(c.threshold_pct), lookbackBars: c.lookback_bars == null ? "" : String(c.lookback_bars) };
    case "volatility_spike":
      return { ...form, window: String(c.window), baseline: String(c.baseline), z: String(c.z) };
    case "signal_change":
      return { ...form, strategy: c.strategy, minChange: String(c.min_change) };
  }
}

/** One line describing a rule's condition. */
export function describeCondition(condition: Schemas["AlertRuleSpec"]["condition"]): string {
  switch (condition.kind) {
    case "regime_change":
      return `${condition.model} regime → ${condition.to_regimes?.join(",") ?? "any"}${
        condition.from_regimes ? ` from ${condition.from_regimes.join(",")}` : ""
      } (p ≥ ${condition.min_probability}, ${condition.confirm_bars} bar)`;
    case "threshold":
      return `${condition.feature} ${condition.op.replace("_", " ")} ${condition.value}`;
    case "drawdown":
      return `drawdown > ${condition.threshold_pct}%${condition.lookback_bars ? ` over ${condition.lookback_bars} bars` : ""}`;
    case "volatility_spike":
      return `${condition.window}-bar vol z > ${condition.z} vs ${condition.baseline}`;
    case "signal_change":
      return `${condition.strategy} signal flips${condition.min_change ? ` (≥ ${condition.min_change})` : ""}`;
  }
}
