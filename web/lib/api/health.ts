// Shape of GET /health. Hand-written until the dashboard generates its API
// types from the backend's OpenAPI schema; keep in sync with api/ until then.

export type ServiceStatus = "ok" | "error";
export type OverallStatus = "ok" | "degraded";

export interface DependencyHealth {
  status: ServiceStatus;
  detail: string | null;
  latency_ms: number | null;
}

export interface HealthReport {
  status: OverallStatus;
  version: string;
  database: DependencyHealth;
  cache: DependencyHealth;
}

export type HealthResult =
  | { ok: true; apiUrl: string; report: HealthReport }
  | { ok: false; apiUrl: string; error: string };

const DEFAULT_API_URL = "http://127.0.0.1:8000";
const HEALTH_TIMEOUT_MS = 3000;

/** Base URL of the RegimeLab API, read at request time so containers can set it. */
export function apiBaseUrl(): string {
  return (process.env.REGIMELAB_API_URL ?? DEFAULT_API_URL).replace(/\/+$/, "");
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null;
}

function isDependencyHealth(value: unknown): value is DependencyHealth {
  return (
    isRecord(value) &&
    (value.status === "ok" || value.status === "error") &&
    (value.detail === null || typeof value.detail === "string") &&
    (value.latency_ms === null || typeof value.latency_ms === "number")
  );
}

function isHealthReport(value: unknown): value is HealthReport {
  return (
    isRecord(value) &&
    (value.status === "ok" || value.status === "degraded") &&
    typeof value.version === "string" &&
    isDependencyHealth(value.database) &&
    isDependencyHealth(value.cache)
  );
}

function describeError(error: unknown): string {
  if (error instanceof Error) {
    if (error.name === "TimeoutError") {
      return `no answer within ${HEALTH_TIMEOUT_MS / 1000} s`;
    }
    // undici hides the network reason (ECONNREFUSED, ENOTFOUND, ...) in `cause`.
    const cause = error.cause;
    if (isRecord(cause) && typeof cause.code === "string") {
      return `${error.message} (${cause.code})`;
    }
    return error.message;
  }
  return String(error);
}

/** The API's health report, or why it could not be read; never throws. */
export async function fetchHealth(): Promise<HealthResult> {
  const apiUrl = apiBaseUrl();
  try {
    const response = await fetch(`${apiUrl}/health`, {
      cache: "no-store",
      headers: { accept: "application/json" },
      signal: AbortSignal.timeout(HEALTH_TIMEOUT_MS),
    });
    // A degraded API may answer 503 with a full report, so read the body first.
    const body: unknown = await response.json().catch(() => null);
    if (isHealthReport(body)) {
      return { ok: true, apiUrl, report: body };
    }
    return {
      ok: false,
      apiUrl,
      error: `unexpected response: HTTP ${response.status} ${response.statusText}`.trim(),
    };
  } catch (error) {
    return { ok: false, apiUrl, error: describeError(error) };
  }
}
