import type { DependencyHealth, HealthResult } from "@/lib/api/health";
import { StatusBadge } from "@/components/status-badge";

function formatLatency(latencyMs: number | null): string {
  return latencyMs === null ? "—" : `${latencyMs.toFixed(1)} ms`;
}

function DependencyRow({ name, health }: { name: string; health: DependencyHealth }) {
  return (
    <div className="flex items-start justify-between gap-4 py-2">
      <div className="min-w-0">
        <dt className="text-sm font-medium">{name}</dt>
        {health.detail ? (
          <dd className="truncate text-xs text-neutral-500" title={health.detail}>
            {health.detail}
          </dd>
        ) : null}
      </div>
      <dd className="flex shrink-0 items-center gap-3">
        <span className="text-xs tabular-nums text-neutral-500">
          {formatLatency(health.latency_ms)}
        </span>
        <StatusBadge status={health.status} />
      </dd>
    </div>
  );
}

export function HealthCard({ result }: { result: HealthResult }) {
  return (
    <section
      aria-labelledby="health-title"
      className="w-full max-w-md rounded-xl border border-neutral-200 bg-white p-6 shadow-sm dark:border-neutral-800 dark:bg-neutral-950"
    >
      <header className="flex items-center justify-between gap-4">
        <h2 id="health-title" className="text-base font-semibold">
          API health
        </h2>
        <StatusBadge status={result.ok ? result.report.status : "unreachable"} />
      </header>
      {result.ok ? (
        <>
          <dl className="mt-4 divide-y divide-neutral-200 dark:divide-neutral-800">
            <DependencyRow name="Database" health={result.report.database} />
            <DependencyRow name="Cache" health={result.report.cache} />
          </dl>
          <p className="mt-4 text-xs text-neutral-500">
            API {result.report.version} at <code>{result.apiUrl}</code>
          </p>
        </>
      ) : (
        <div role="alert" className="mt-4 space-y-2 text-sm">
          <p className="font-medium text-red-700 dark:text-red-400">
            The RegimeLab API is unreachable.
          </p>
          <p className="text-neutral-600 dark:text-neutral-400">
            Tried <code>{result.apiUrl}/health</code>: {result.error}
          </p>
          <p className="text-xs text-neutral-500">
            Start it with <code>regimelab serve</code> or set <code>REGIMELAB_API_URL</code>.
          </p>
        </div>
      )}
    </section>
  );
}
