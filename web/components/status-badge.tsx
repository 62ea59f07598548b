type Tone = "good" | "warn" | "bad";

const TONE_CLASSES: Record<Tone, string> = {
  good: "bg-emerald-100 text-emerald-800 ring-emerald-600/20 dark:bg-emerald-900/40 dark:text-emerald-300",
  warn: "bg-amber-100 text-amber-800 ring-amber-600/20 dark:bg-amber-900/40 dark:text-amber-300",
  bad: "bg-red-100 text-red-800 ring-red-600/20 dark:bg-red-900/40 dark:text-red-300",
};

const STATUS_TONES: Record<string, Tone> = {
  ok: "good",
  degraded: "warn",
  error: "bad",
  unreachable: "bad",
};

export function StatusBadge({ status }: { status: string }) {
  const tone = STATUS_TONES[status] ?? "warn";
  return (
    <span
      data-status={status}
      className={`inline-flex items-center rounded-md px-2 py-0.5 text-xs font-medium ring-1 ring-inset ${TONE_CLASSES[tone]}`}
    >
      {status}
    </span>
  );
}
