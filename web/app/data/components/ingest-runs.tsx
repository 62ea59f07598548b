"use client";

import type { ColumnDef } from "@tanstack/react-table";
import { DataTable } from "@/components/data-table";
import { EmptyState, QueryState } from "@/components/query-state";
import { Badge, StatusBadge } from "@/components/ui/badge";
import { Card, CardContent, CardDescription, CardHeader, CardTitle } from "@/components/ui/card";
import { api, unwrap, type Schemas } from "@/lib/api/client";
import { useApiQuery } from "@/lib/api/hooks";
import { qualityFlags } from "@/lib/quality";
import { formatDateTime } from "@/lib/format";

type Run = Schemas["IngestRun"];

const COLUMNS: ColumnDef<Run, unknown>[] = [
  { accessorKey: "id", header: "Run" },
  { accessorKey: "provider", header: "Provider" },
  { id: "symbols", header: "Symbols", accessorFn: (r) => r.symbols.join(", ") },
  { accessorKey: "interval", header: "Interval" },
  { accessorKey: "status", header: "Status", cell: ({ row }) => <StatusBadge status={row.original.status} /> },
  { accessorKey: "rows_upserted", header: "Stored", cell: ({ row }) => row.original.rows_upserted.toLocaleString("en-US") },
  { accessorKey: "rows_rejected", header: "Rejected" },
  {
    id: "quality",
    header: "Quality flags",
    enableSorting: false,
    cell: ({ row }) => {
      const flags = qualityFlags(row.original.quality);
      if (row.original.error) return <span className="text-destructive">{row.original.error}</span>;
      return flags.length === 0 ? (
        <Badge tone="good">clean</Badge>
      ) : (
        <span className="flex flex-wrap gap-1">
          {flags.map((flag) => (
            <Badge key={flag.name} tone={flag.severity === "bad" ? "bad" : "warn"} title={flag.detail}>
              {flag.name}: {flag.count}
            </Badge>
          ))}
        </span>
      );
    },
  },
  { accessorKey: "started_at", header: "Started", cell: ({ row }) => formatDateTime(row.original.started_at) },
];

export function IngestRuns() {
  const runs = useApiQuery(["ingest-runs", 50], async () =>
    unwrap(await api.GET("/api/v1/ingest/runs", { params: { query: { limit: 50 } } })),
  );
  return (
    <Card>
      <CardHeader>
        <div>
          <CardTitle>Ingest runs</CardTitle>
          <CardDescription>Every load with its counts and the data-quality checks it reported.</CardDescription>
        </div>
      </CardHeader>
      <CardContent>
        <QueryState query={runs} isEmpty={(page) => page.items.length === 0} empty={<EmptyState title="No ingest runs yet" />}>
          {(page) => <DataTable label="Ingest runs" columns={COLUMNS} data={page.items} rowTestId="ingest-row" />}
        </QueryState>
      </CardContent>
    </Card>
  );
}
