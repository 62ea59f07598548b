import type { Schemas } from "@/lib/api/client";

type RegimeNow = Schemas["RegimeNow"];
type RegimeLabel = Schemas["RegimeLabel"];

/** Regimes ascend by volatility, so colours run from calm green to turbulent red. */
const RAMP = ["#16a34a", "#65a30d", "#ca8a04", "#ea580c", "#dc2626", "#9f1239", "#7e22ce", "#1e3a8a"];

/** The colour of regime `regime` of a model with `nStates` regimes. */
export function regimeColor(regime: number, nStates: number): string {
  if (nStates <= 1) return RAMP[0]!;
  const position = Math.min(Math.max(regime, 0), nStates - 1) / (nStates - 1);
  const index = Math.round(position * 4); // spread over green … red
  return RAMP[index] ?? RAMP[RAMP.length - 1]!;
}

/** `#rrggbb` with an alpha channel, for translucent regime bands. */
export function withAlpha(hex: string, alpha: number): string {
  const a = Math.round(Math.min(Math.max(alpha, 0), 1) * 255)
    .toString(16)
    .padStart(2, "0");
  return `${hex}${a}`;
}

export function regimeLabel(regime: number, name: string | null | undefined): string {
  return name ? `${regime} · ${name}` : `regime ${regime}`;
}

/** A regime that began this recently counts as a fresh change on the overview. */
export const RECENT_CHANGE_DAYS = 5;

export interface HeatmapCell {
  symbol: string;
  model: string;
  regime: number;
  name: string | null;
  probability: number;
  daysInRegime: number;
  nStates: number;
  asOf: string;
  changed: boolean;
  color: string;
}

export interface Heatmap {
  symbols: string[];
  models: string[];
  cells: Map<string, HeatmapCell>;
  missing: { symbol: string; model: string }[];
}

export function cellKey(symbol: string, model: string): string {
  return `${symbol}\u0000${model}`;
}

/** Symbol × model grid of current regimes from one snapshot per model. */
export function buildHeatmap(
  snapshots: { model: string; items: RegimeNow[]; missing: string[] }[],
  watchlist: string[] = [],
): Heatmap {
  const symbols = new Set<string>(watchlist);
  const models: string[] = [];
  const cells = new Map<string, HeatmapCell>();
  const missing: { symbol: string; model: string }[] = [];
  for (const snapshot of snapshots) {
    if (!models.includes(snapshot.model)) models.push(snapshot.model);
    for (const item of snapshot.items) {
      symbols.add(item.symbol);
      cells.set(cellKey(item.symbol, snapshot.model), {
        symbol: item.symbol,
        model: snapshot.model,
        regime: item.regime,
        name: item.name ?? null,
        probability: item.probability,
        daysInRegime: item.days_in_regime,
        nStates: item.n_states,
        asOf: item.ts,
        changed: item.days_in_regime <= RECENT_CHANGE_DAYS,
        color: regimeColor(item.regime, item.n_states),
      });
    }
    for (const symbol of snapshot.missing) {
      symbols.add(symbol);
      missing.push({ symbol, model: snapshot.model });
    }
  }
  return { symbols: [...symbols], models, cells, missing };
}

export interface RegimeBand {
  time: number; // UTC seconds, lightweight-charts' time
  regime: number;
  color: string;
}

/** UTC seconds of an ISO timestamp (the chart's time axis). */
export function toChartTime(iso: string): number {
  return Math.floor(Date.parse(iso) / 1000);
}

/** One translucent band value per labelled bar, coloured by its regime. */
export function regimeBands(labels: RegimeLabel[], nStates: number, alpha = 0.22): RegimeBand[] {
  return labels.map((label) => ({
    time: toChartTime(label.ts),
    regime: label.regime,
    color: withAlpha(regimeColor(label.regime, nStates), alpha),
  }));
}

export interface RegimeSwitch {
  time: number;
  from: number | null;
  to: number;
}

/** The bars where the regime differs from the bar before (the first bar included). */
export function regimeSwitches(labels: RegimeLabel[]): RegimeSwitch[] {
  const switches: RegimeSwitch[] = [];
  let previous: number | null = null;
  for (const label of labels) {
    if (label.regime !== previous) {
      switches.push({ time: toChartTime(label.ts), from: previous, to: label.regime });
      previous = label.regime;
    }
  }
  return switches;
}

/** Distinct models with at least one succeeded run, newest run first. */
export function modelsWithRuns(runs: Schemas["RegimeRunSummary"][]): string[] {
  const seen: string[] = [];
  const sorted = [...runs].sort((a, b) => b.created_at.localeCompare(a.created_at));
  for (const run of sorted) {
    if (run.status === "succeeded" && !seen.includes(run.model)) seen.push(run.model);
  }
  return seen;
}
