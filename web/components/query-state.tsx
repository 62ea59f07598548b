"use client";

import { AlertTriangle, Inbox, KeyRound } from "lucide-react";
import Link from "next/link";
import type { ReactNode } from "react";
import { Alert } from "@/components/ui/alert";
import { Skeleton } from "@/components/ui/skeleton";
import { useApiKey } from "@/components/api-key-provider";
import { ApiError } from "@/lib/api/client";

export function LoadingRows({ rows = 4, className }: { rows?: number; className?: string }) {
  return (
    <div className={className} aria-busy="true" aria-label="Loading">
      {Array.from({ length: rows }, (_, i) => (
        <Skeleton key={i} className="mb-2 h-7 w-full" />
      ))}
    </div>
  );
}

export function EmptyState({ title, children }: { title: string; children?: ReactNode }) {
  return (
    <div className="flex flex-col items-center gap-1 rounded-lg border border-dashed border-border px-4 py-8 text-center">
      <Inbox className="size-5 text-muted-foreground" aria-hidden />
      <p className="text-sm font-medium">{title}</p>
      {children ? <div className="text-xs text-muted-foreground">{children}</div> : null}
    </div>
  );
}

export function ErrorState({ error }: { error: Error }) {
  const status = error instanceof ApiError ? error.status : null;
  return (
    <Alert>
      <div className="flex items-start gap-2">
        <AlertTriangle className="mt-0.5 size-4 shrink-0" aria-hidden />
        <div>
          <p className="font-medium">
            {error instanceof ApiError ? (error.problem?.title ?? `HTTP ${status}`) : "Request failed"}
          </p>
          <p className="text-xs opacity-90">{error.message}</p>
          {status === 401 ? (
            <p className="mt-1 text-xs">
              Check the API key on <Link href="/settings" className="underline">Settings</Link>.
            </p>
          ) : null}
        </div>
      </div>
    </Alert>
  );
}

/** Loading skeleton, error (problem details), empty state or the content, in that order. */
export function QueryState<T>({
  query,
  empty,
  isEmpty,
  rows,
  children,
}: {
  query: { data: T | undefined; error: Error | null; isPending: boolean };
  empty?: ReactNode;
  isEmpty?: (data: T) => boolean;
  rows?: number;
  children: (data: T) => ReactNode;
}) {
  const { apiKey, ready } = useApiKey();
  if (ready && !apiKey) return <NoKey />;
  if (query.error) return <ErrorState error={query.error} />;
  if (query.data === undefined) return <LoadingRows rows={rows} />;
  if (isEmpty?.(query.data)) return <>{empty ?? <EmptyState title="Nothing here yet" />}</>;
  return <>{children(query.data)}</>;
}

export function NoKey() {
  return (
    <Alert tone="info">
      <div className="flex items-center gap-2">
        <KeyRound className="size-4" aria-hidden />
        <span>
          No API key yet: enter one on <Link href="/settings" className="font-medium underline">Settings</Link>{" "}
          (create it with <code>regimelab api-keys create --name me --scopes read,write,admin</code>).
        </span>
      </div>
    </Alert>
  );
}
