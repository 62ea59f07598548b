export interface QualityFlag {
  name: string;
  count: number;
  severity: "warn" | "bad";
  detail?: string;
}

const COUNTERS: { key: string; name: string; severity: "warn" | "bad" }[] = [
  { key: "rows_invalid", name: "invalid rows", severity: "bad" },
  { key: "duplicate_ts", name: "duplicate timestamps", severity: "warn" },
  { key: "out_of_order", name: "out of order", severity: "warn" },
  { key: "calendar_gaps", name: "calendar gaps", severity: "warn" },
];

/** The non-zero data-quality counters of an ingest run's `quality` report. */
export function qualityFlags(quality: Record<string, unknown> | null | undefined): QualityFlag[] {
  if (!quality) return [];
  const flags: QualityFlag[] = [];
  for (const { key, name, severity } of COUNTERS) {
    const count = quality[key];
    if (typeof count === "number" && count > 0) flags.push({ name, count, severity });
  }
  const rejected = quality.rejected;
  if (rejected && typeof rejected === "object") {
    for (const [reason, count] of Object.entries(rejected as Record<string, unknown>)) {
      if (typeof count === "number" && count > 0) flags.push({ name: `rejected ${reason.replaceAll("_", " ")}`, count, severity: "bad" });
    }
  }
  const gaps = quality.gap_examples;
  if (Array.isArray(gaps) && gaps.length > 0) {
    const gapFlag = flags.find((f) => f.name === "calendar gaps");
    if (gapFlag) gapFlag.detail = `e.g. ${gaps.slice(0, 3).map(String).join(", ")}`;
  }
  return flags;
}
