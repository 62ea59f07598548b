import createClient, { type Middleware } from "openapi-fetch";
import type { components, paths } from "@/lib/api/schema";
import { readApiKey } from "@/lib/api-key";

export type Schemas = components["schemas"];

/** An API error with its RFC 9457 problem details (status, title, detail, field errors). */
export class ApiError extends Error {
  readonly status: number;
  readonly problem: Partial<Schemas["Problem"]> | null;

  constructor(status: number, problem: Partial<Schemas["Problem"]> | null, fallback: string) {
    super(problemMessage(problem) ?? fallback);
    this.name = "ApiError";
    this.status = status;
    this.problem = problem;
  }
}

/** One line for a problem document: its detail plus the offending fields, if any. */
export function problemMessage(problem: Partial<Schemas["Problem"]> | null | undefined): string | null {
  if (!problem) return null;
  const base = problem.detail ?? problem.title ?? null;
  const fields = (problem.errors ?? [])
    .map((e) => `${e.field ?? "body"}: ${e.message}`)
    .join("; ");
  if (base && fields) return `${base} (${fields})`;
  return base ?? (fields || null);
}

function isProblem(value: unknown): value is Partial<Schemas["Problem"]> {
  return typeof value === "object" && value !== null && ("detail" in value || "title" in value);
}

/** Same origin by default: the API serves the dashboard under `regimelab up`. */
export const API_BASE_URL = (process.env.NEXT_PUBLIC_REGIMELAB_API_URL ?? "").replace(/\/+$/, "");

export function authHeaders(): Record<string, string> {
  const key = readApiKey();
  return key ? { Authorization: `Bearer ${key}` } : {};
}

const auth: Middleware = {
  onRequest({ request }) {
    for (const [name, value] of Object.entries(authHeaders())) request.headers.set(name, value);
    return request;
  },
};

export const api = createClient<paths>({ baseUrl: API_BASE_URL });
api.use(auth);

/** The data of an openapi-fetch result, or an ApiError carrying the problem details. */
export function unwrap<T>(result: { data?: T; error?: unknown; response: Response }): T {
  if (result.error !== undefined || !result.response.ok) {
    const problem = isProblem(result.error) ? result.error : null;
    throw new ApiError(
      result.response.status,
      problem,
      `HTTP ${result.response.status} ${result.response.statusText}`.trim(),
    );
  }
  return result.data as T;
}
