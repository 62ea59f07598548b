"use client";

import { QueryState } from "@/components/query-state";
import { StatusBadge } from "@/components/ui/badge";
import { Card, CardContent, CardHeader, CardTitle } from "@/components/ui/card";
import { api, unwrap } from "@/lib/api/client";
import { useApiQuery } from "@/lib/api/hooks";
import { formatDateTime } from "@/lib/format";

export function IngestStatus() {
  const runs = useApiQuery(["ingest-runs", 1], async () =>
    unwrap(await api.GET("/api/v1/ingest/runs", { params: { query: { limit: 1 } } })),
  );
  return (
    <Card>
      <CardHeader>
        <CardTitle>Last ingest</CardTitle>
      </CardHeader>
      <CardContent>
        <QueryState query={runs} isEmpty={(page) => page.items.length === 0} rows={2}>
          {(page) => {
            const run = page.items[0]!;
            return (
              <dl className="grid grid-cols-2 gap-x-4 gap-y-1 text-sm" data-testid="last-ingest">
                <dt className="text-muted-foreground">Status</dt>
                <dd>
                  <StatusBadge status={run.status} />
                </dd>
                <dt className="text-muted-foreground">Provider</dt>
                <dd>
                  {run.provider} · {run.symbols.join(", ")}
                </dd>
                <dt className="text-muted-foreground">Rows</dt>
                <dd className="tabular-nums">
                  {run.rows_upserted.toLocaleString("en-US")} stored, {run.rows_rejected} rejected
                </dd>
                <dt className="text-muted-foreground">Finished</dt>
                <dd>{formatDateTime(run.finished_at)}</dd>
                {run.error ? <dd className="col-span-2 text-destructive">{run.error}</dd> : null}
              </dl>
            );
          }}
        </QueryState>
      </CardContent>
    </Card>
  );
}
