"use client";

import type { ColumnDef } from "@tanstack/react-table";
import { usePathname, useRouter, useSearchParams } from "next/navigation";
import { PageHeader } from "@/components/app-shell";
import { DataTable } from "@/components/data-table";
import { EmptyState, QueryState } from "@/components/query-state";
import { StatusBadge } from "@/components/ui/badge";
import { Card, CardContent, CardHeader, CardTitle } from "@/components/ui/card";
import { api, unwrap, type Schemas } from "@/lib/api/client";
import { useApiQuery } from "@/lib/api/hooks";
import { formatDateTime, formatPercent } from "@/lib/format";
import { BacktestDetail } from "@/app/backtests/components/backtest-detail";
import { RunForm } from "@/app/backtests/components/run-form";

const COLUMNS: ColumnDef<Schemas["BacktestRun"], unknown>[] = [
  { accessorKey: "id", header: "Run" },
  { accessorKey: "kind", header: "Kind" },
  { id: "strategy", header: "Strategy", accessorFn: (r) => r.strategy_name ?? r.strategy ?? "—" },
  { id: "symbols", header: "Symbols", accessorFn: (r) => r.symbols.join(", ") },
  {
    accessorKey: "status",
    header: "Status",
    cell: ({ row }) => (
      <span className="flex items-center gap-2">
        <StatusBadge status={row.original.status} />
        {row.original.status === "running" ? formatPercent(row.original.progress, 0) : null}
      </span>
    ),
  },
  { accessorKey: "created_at", header: "Created", cell: ({ row }) => formatDateTime(row.original.created_at) },
];

export function BacktestsView() {
  const params = useSearchParams();
  const router = useRouter();
  const pathname = usePathname();
  const selected = Number(params.get("run")) || null;
  const runs = useApiQuery(
    ["backtests"],
    async () => unwrap(await api.GET("/api/v1/backtests", { params: { query: { limit: 50 } } })),
    { refetchInterval: (q) => (q.state.data?.items.some((r) => r.status === "running" || r.status === "queued") ? 2000 : false) },
  );
  const open = (runId: number) => router.replace(`${pathname}?run=${runId}`, { scroll: false });

  return (
    <>
      <PageHeader title="Backtests" description="Run strategies and sweeps on stored bars; compare with the benchmark, overall and per regime." />
      <div className="grid gap-4 xl:grid-cols-3">
        <RunForm onDone={open} />
        <Card className="xl:col-span-2">
          <CardHeader>
            <CardTitle>Runs</CardTitle>
          </CardHeader>
          <CardContent>
            <QueryState
              query={runs}
              isEmpty={(page) => page.items.length === 0}
              empty={<EmptyState title="No backtests yet">Run one with the form.</EmptyState>}
            >
              {(page) => (
                <DataTable
                  label="Backtest runs"
                  columns={COLUMNS}
                  data={page.items}
                  rowTestId="backtest-row"
                  onRowClick={(run) => open(run.id)}
                />
              )}
            </QueryState>
          </CardContent>
        </Card>
      </div>
      {selected ? <BacktestDetail runId={selected} /> : null}
    </>
  );
}
