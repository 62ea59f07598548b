/** Drawdown of an equity curve: equity / running peak − 1 (null where equity is null). */
export function drawdown(equity: (number | null)[]): (number | null)[] {
  let peak = -Infinity;
  return equity.map((value) => {
    if (value === null || !Number.isFinite(value)) return null;
    peak = Math.max(peak, value);
    return peak > 0 ? value / peak - 1 : 0;
  });
}

/** A benchmark's closes rescaled to start at `start` on the first shared timestamp. */
export function rebase(
  closes: { ts: string; close: number }[],
  fromTs: string,
  start: number,
): { ts: string; value: number }[] {
  const from = Date.parse(fromTs);
  const window = closes.filter((bar) => Date.parse(bar.ts) >= from);
  const first = window[0]?.close;
  if (first === undefined || first <= 0) return [];
  return window.map((bar) => ({ ts: bar.ts, value: (bar.close / first) * start }));
}

/** Metrics shown first, in this order; the rest follow alphabetically. */
export const KEY_METRICS = [
  "total_return",
  "cagr",
  "sharpe",
  "sortino",
  "max_drawdown",
  "annual_volatility",
  "calmar",
  "win_rate",
  "trades",
  "exposure",
  "benchmark_return",
] as const;

const PERCENT_METRICS = new Set([
  "total_return",
  "cagr",
  "annual_return",
  "annual_volatility",
  "max_drawdown",
  "win_rate",
  "exposure",
  "benchmark_return",
  "alpha",
  "avg_trade_return",
  "share_of_time",
]);

/** Numeric metric names of a set of results, key metrics first. */
export function metricColumns(metrics: Record<string, unknown>[]): string[] {
  const names = new Set<string>();
  for (const row of metrics) {
    for (const [name, value] of Object.entries(row)) if (typeof value === "number") names.add(name);
  }
  const key = KEY_METRICS.filter((name) => names.has(name));
  const rest = [...names].filter((name) => !(KEY_METRICS as readonly string[]).includes(name)).sort();
  return [...key, ...rest];
}

export function formatMetric(name: string, value: unknown): string {
  if (typeof value !== "number" || !Number.isFinite(value)) return value == null ? "—" : String(value);
  if (PERCENT_METRICS.has(name)) return `${(value * 100).toFixed(2)}%`;
  if (Number.isInteger(value)) return value.toLocaleString("en-US");
  return value.toFixed(3);
}

/** "fast=10,20,50; slow=100,200" → {fast: [10, 20, 50], slow: [100, 200]} (numbers when numeric). */
export function parseGrid(text: string): Record<string, (number | string | boolean)[]> {
  const grid: Record<string, (number | string | boolean)[]> = {};
  for (const part of text.split(/[;\n]/)) {
    const trimmed = part.trim();
    if (!trimmed) continue;
    const [name, values] = trimmed.split("=", 2);
    if (!name?.trim() || values === undefined) throw new Error(`expected name=v1,v2 in "${trimmed}"`);
    const range = values.trim().match(/^(-?[\d.]+):(-?[\d.]+):([\d.]+)$/);
    if (range) {
      const [lo, hi, step] = [Number(range[1]), Number(range[2]), Number(range[3])];
      if (!(step > 0)) throw new Error(`step must be positive in "${trimmed}"`);
      const list: number[] = [];
      for (let v = lo; v <= hi + 1e-9; v += step) list.push(Number(v.toFixed(10)));
      grid[name.trim()] = list;
      continue;
    }
    grid[name.trim()] = values
      .split(",")
      .map((v) => v.trim())
      .filter(Boolean)
      .map(parseScalar);
  }
  return grid;
}

export function parseScalar(text: string): number | string | boolean {
  if (text === "true") return true;
  if (text === "false") return false;
  const n = Number(text);
  return text !== "" && Number.isFinite(n) ? n : text;
}

export interface SweepGrid {
  xParam: string;
  yParam: string;
  xs: string[];
  ys: string[];
  values: (number | null)[][]; // values[y][x]
  min: number;
  max: number;
}

/** A two-parameter sweep as a grid of one metric (null when the sweep has other shapes). */
export function sweepGrid(
  results: { params: unknown; metrics: Record<string, unknown> }[],
  gridParams: string[],
  metric: string,
): SweepGrid | null {
  if (gridParams.length !== 2 || results.length < 2) return null;
  const [xParam, yParam] = gridParams as [string, string];
  const xs: string[] = [];
  const ys: string[] = [];
  const cells = new Map<string, number>();
  for (const result of results) {
    const params = (result.params ?? {}) as Record<string, unknown>;
    const x = String(params[xParam]);
    const y = String(params[yParam]);
    if (!xs.includes(x)) xs.push(x);
    if (!ys.includes(y)) ys.push(y);
    const value = result.metrics[metric];
    if (typeof value === "number" && Number.isFinite(value)) cells.set(`${x}|${y}`, value);
  }
  const byNumber = (a: string, b: string) => Number(a) - Number(b) || a.localeCompare(b);
  xs.sort(byNumber);
  ys.sort(byNumber);
  const values = ys.map((y) => xs.map((x) => cells.get(`${x}|${y}`) ?? null));
  const all = [...cells.values()];
  if (all.length === 0) return null;
  return { xParam, yParam, xs, ys, values, min: Math.min(...all), max: Math.max(...all) };
}

/** A diverging colour for a value between min and max (red low, green high). */
export function heatColor(value: number | null, min: number, max: number): string {
  if (value === null) return "transparent";
  const t = max > min ? (value - min) / (max - min) : 0.5;
  const hue = Math.round(t * 120); // 0 red … 120 green
  return `hsl(${hue} 70% 45%)`;
}
