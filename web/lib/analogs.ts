import type { Schemas } from "@/lib/api/client";

type Result = Schemas["AnalogSearchResult"];

export interface FanGeometry {
  /** The query's own path up to today (offsets ≤ 0), as an SVG path. */
  query: string;
  /** q10–q90 and q25–q75 bands of the analogs' paths after today (offsets ≥ 0), as SVG paths. */
  outer: string;
  inner: string;
  median: string;
  /** x of today (offset 0) and y of a 0 % return. */
  zeroX: number;
  zeroY: number;
  yTicks: { y: number; label: string }[];
  xTicks: { x: number; label: string }[];
}

function finite(value: number | null | undefined): value is number {
  return typeof value === "number" && Number.isFinite(value);
}

function line(points: [number, number][]): string {
  return points.map(([x, y], i) => `${i === 0 ? "M" : "L"}${x.toFixed(1)},${y.toFixed(1)}`).join("");
}

function band(upper: [number, number][], lower: [number, number][]): string {
  if (upper.length === 0) return "";
  return `${line(upper)}${lower
    .slice()
    .reverse()
    .map(([x, y]) => `L${x.toFixed(1)},${y.toFixed(1)}`)
    .join("")}Z`;
}

/** SVG geometry of an analog fan: the query's path, then the analogs' quantile bands ahead. */
export function fanGeometry(
  result: Pick<Result, "query_path" | "fan">,
  width: number,
  height: number,
  pad = { left: 44, right: 8, top: 8, bottom: 22 },
): FanGeometry | null {
  const query = result.query_path.filter((p) => finite(p.value)) as { offset: number; value: number }[];
  const fan = result.fan.filter((p) => finite(p.q10) && finite(p.q90) && finite(p.q25) && finite(p.q75) && finite(p.median));
  if (query.length === 0 && fan.length === 0) return null;
  const offsets = [...query.map((p) => p.offset), ...fan.map((p) => p.offset)];
  const values = [
    ...query.map((p) => p.value),
    ...fan.flatMap((p) => [p.q10 as number, p.q90 as number]),
    0,
  ];
  const [minX, maxX] = [Math.min(...offsets), Math.max(...offsets)];
  const [minY, maxY] = [Math.min(...values), Math.max(...values)];
  const spanX = maxX - minX || 1;
  const spanY = maxY - minY || 1;
  const x = (offset: number) => pad.left + ((offset - minX) / spanX) * (width - pad.left - pad.right);
  const y = (value: number) => pad.top + ((maxY - value) / spanY) * (height - pad.top - pad.bottom);
  const at = (key: "q10" | "q25" | "median" | "q75" | "q90") =>
    fan.map((p) => [x(p.offset), y(p[key] as number)] as [number, number]);
  const step = niceStep(spanY / 4);
  const yTicks: { y: number; label: string }[] = [];
  for (let v = Math.ceil(minY / step) * step; v <= maxY + 1e-12; v += step) {
    yTicks.push({ y: y(v), label: `${(v * 100).toFixed(Math.abs(step) < 0.01 ? 1 : 0)}%` });
  }
  const xTicks = [minX, 0, maxX]
    .filter((o, i, all) => all.indexOf(o) === i && o >= minX && o <= maxX)
    .map((o) => ({ x: x(o), label: o === 0 ? "today" : `${o > 0 ? "+" : ""}${o}` }));
  return {
    query: line(query.map((p) => [x(p.offset), y(p.value)])),
    outer: band(at("q90"), at("q10")),
    inner: band(at("q75"), at("q25")),
    median: line(at("median")),
    zeroX: x(0),
    zeroY: y(0),
    yTicks,
    xTicks,
  };
}

/** 1, 2 or 5 × a power of ten, at least `raw`. */
export function niceStep(raw: number): number {
  if (!(raw > 0)) return 1;
  const power = 10 ** Math.floor(Math.log10(raw));
  const fraction = raw / power;
  return (fraction <= 1 ? 1 : fraction <= 2 ? 2 : fraction <= 5 ? 5 : 10) * power;
}
