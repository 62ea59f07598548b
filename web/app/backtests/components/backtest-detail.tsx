"use client";

import type { ColumnDef } from "@tanstack/react-table";
import { useMemo, useState } from "react";
import { DataTable } from "@/components/data-table";
import { LineChart } from "@/components/line-chart";
import { QueryState } from "@/components/query-state";
import { StatusBadge } from "@/components/ui/badge";
import { Card, CardContent, CardDescription, CardHeader, CardTitle } from "@/components/ui/card";
import { Table, TableBody, TableCell, TableHead, TableHeader, TableRow } from "@/components/ui/table";
import { api, unwrap, type Schemas } from "@/lib/api/client";
import { useApiQuery } from "@/lib/api/hooks";
import { drawdown, formatMetric, KEY_METRICS, metricColumns, rebase } from "@/lib/backtests";
import { formatDateTime } from "@/lib/format";
import { toChartTime } from "@/lib/regimes";
import { SweepHeatmap } from "@/app/backtests/components/sweep-heatmap";
import { WalkForwardView } from "@/app/backtests/components/walk-forward-view";

type Result = Schemas["BacktestResult"];

export function paramsText(params: Result["params"]): string {
  if (Array.isArray(params)) return `${params.length} folds`;
  return Object.entries(params)
    .filter(([name]) => name !== "kind")
    .map(([name, value]) => `${name}=${JSON.stringify(value)}`)
    .join(" ");
}

export function BacktestDetail({ runId }: { runId: number }) {
  const run = useApiQuery(["backtest", runId], async () =>
    unwrap(await api.GET("/api/v1/backtests/{run_id}", { params: { path: { run_id: runId } } })),
  );
  const results = useApiQuery(
    ["backtest-results", runId],
    async () =>
      unwrap(
        await api.GET("/api/v1/backtests/{run_id}/results", {
          params: { path: { run_id: runId }, query: { limit: 1000, sort: "sharpe", desc: true } },
        }),
      ),
    { enabled: run.data?.status === "succeeded" },
  );
  const [chosen, setChosen] = useState<number | null>(null);
  const resultId = chosen ?? run.data?.summary.best?.id ?? results.data?.items[0]?.id ?? null;

  return (
    <section className="mt-6 grid gap-4" aria-label={`Backtest run ${runId}`} data-testid="backtest-detail">
      <QueryState query={run} rows={2}>
        {(detail) => (
          <div className="flex flex-wrap items-center gap-3">
            <h2 className="text-xl font-semibold">Run {detail.id}</h2>
            <StatusBadge status={detail.status} />
            <span className="text-sm text-muted-foreground">
              {detail.kind} · {detail.strategy_name ?? detail.strategy} · {detail.symbols.join(", ")} ·{" "}
              {formatDateTime(detail.created_at)}
            </span>
            {detail.error ? <span className="text-sm text-destructive">{detail.error}</span> : null}
          </div>
        )}
      </QueryState>
      {run.data?.status === "succeeded" ? (
        <>
          <QueryState query={results} rows={4}>
            {(page) => (
              <ResultsTable results={page.items} selected={resultId} onSelect={setChosen} />
            )}
          </QueryState>
          {resultId !== null ? (
            <ResultCharts runId={runId} resultId={resultId} benchmark={(run.data.spec.benchmark as string | null) ?? null} />
          ) : null}
          {resultId !== null ? <RegimeMetrics runId={runId} resultId={resultId} /> : null}
          {results.data && Object.keys((run.data.spec.grid as Record<string, unknown>) ?? {}).length === 2 && !run.data.walk_forward ? (
            <SweepHeatmap results={results.data.items} gridParams={Object.keys(run.data.spec.grid as Record<string, unknown>)} />
          ) : null}
          {run.data.walk_forward && results.data ? (
            <WalkForwardView spec={run.data.walk_forward} results={results.data.items} />
          ) : null}
        </>
      ) : null}
    </section>
  );
}

function ResultsTable({
  results,
  selected,
  onSelect,
}: {
  results: Result[];
  selected: number | null;
  onSelect: (id: number) => void;
}) {
  const columns = useMemo<ColumnDef<Result, unknown>[]>(() => {
    const metrics = metricColumns(results.map((r) => r.metrics)).filter((m) =>
      (KEY_METRICS as readonly string[]).includes(m),
    );
    return [
      {
        id: "pick",
        header: "",
        enableSorting: false,
        cell: ({ row }) => (
          <input
            type="radio"
            name="backtest-result"
            aria-label={`Show result ${row.original.id}`}
            checked={row.original.id === selected}
            onChange={() => onSelect(row.original.id)}
          />
        ),
      },
      { accessorKey: "symbol", header: "Symbol", cell: ({ row }) => row.original.symbol ?? "portfolio" },
      { id: "params", header: "Params", accessorFn: (r) => paramsText(r.params) },
      ...metrics.map<ColumnDef<Result, unknown>>((name) => ({
        id: name,
        header: name,
        accessorFn: (r) => (typeof r.metrics[name] === "number" ? r.metrics[name] : null),
        cell: ({ getValue }) => <span data-metric={name}>{formatMetric(name, getValue())}</span>,
      })),
    ];
  }, [results, selected, onSelect]);
  return (
    <Card>
      <CardHeader>
        <div>
          <CardTitle>Metrics</CardTitle>
          <CardDescription>{results.length} result(s); pick one for its curves and per-regime metrics.</CardDescription>
        </div>
      </CardHeader>
      <CardContent>
        <DataTable label="Backtest metrics" columns={columns} data={results} rowTestId="result-row" onRowClick={(r) => onSelect(r.id)} />
      </CardContent>
    </Card>
  );
}

function ResultCharts({ runId, resultId, benchmark }: { runId: number; resultId: number; benchmark: string | null }) {
  const equity = useApiQuery(["equity", runId, resultId], async () =>
    unwrap(
      await api.GET("/api/v1/backtests/{run_id}/equity", {
        params: { path: { run_id: runId }, query: { result: resultId } },
      }),
    ),
  );
  const first = equity.data?.ts[0];
  const bench = useApiQuery(
    ["bars", benchmark, first],
    async () => {
      const series = unwrap(
        await api.GET("/api/v1/instruments/{symbol}/bars", {
          params: { path: { symbol: benchmark! }, query: { start: first!.slice(0, 10), format: "json" } },
        }),
      );
      if (typeof series === "string") throw new Error("expected JSON bars");
      return series;
    },
    { enabled: benchmark !== null && first !== undefined },
  );
  const charts = useMemo(() => {
    if (!equity.data) return undefined;
    const points = equity.data.ts.flatMap((ts, i) => {
      const value = equity.data.equity[i];
      return value == null ? [] : [{ time: toChartTime(ts), value }];
    });
    const startValue = points[0]?.value ?? 1;
    const benchPoints =
      bench.data && equity.data.ts[0]
        ? rebase(bench.data.bars, equity.data.ts[0], startValue).map((p) => ({ time: toChartTime(p.ts), value: p.value }))
        : [];
    const dd = drawdown(equity.data.equity);
    const ddPoints = equity.data.ts.flatMap((ts, i) => {
      const value = dd[i];
      return value == null ? [] : [{ time: toChartTime(ts), value }];
    });
    return {
      equity: [
        { name: "strategy", color: "#2563eb", points },
        ...(benchPoints.length ? [{ name: benchmark ?? "benchmark", color: "#a1a1aa", points: benchPoints }] : []),
      ],
      drawdown: [{ name: "drawdown", color: "#dc2626", points: ddPoints, area: true }],
    };
  }, [equity.data, bench.data, benchmark]);

  return (
    <div className="grid gap-4 xl:grid-cols-2">
      <Card>
        <CardHeader>
          <CardTitle>Equity vs {benchmark ?? "benchmark"}</CardTitle>
        </CardHeader>
        <CardContent>
          <QueryState query={{ data: charts, error: equity.error, isPending: equity.isPending }} rows={6}>
            {(c) => <LineChart series={c.equity} testId="equity-chart" label="Equity curve against the benchmark" />}
          </QueryState>
        </CardContent>
      </Card>
      <Card>
        <CardHeader>
          <CardTitle>Drawdown</CardTitle>
        </CardHeader>
        <CardContent>
          <QueryState query={{ data: charts, error: equity.error, isPending: equity.isPending }} rows={6}>
            {(c) => <LineChart series={c.drawdown} percent testId="drawdown-chart" label="Drawdown from the running peak" />}
          </QueryState>
        </CardContent>
      </Card>
    </div>
  );
}

const REGIME_METRICS = ["share_of_time", "total_return", "cagr", "sharpe", "max_drawdown", "annual_volatility", "win_rate", "trades"];

function RegimeMetrics({ runId, resultId }: { runId: number; resultId: number }) {
  const regimes = useApiQuery(["backtest-regimes", runId, resultId], async () =>
    unwrap(
      await api.GET("/api/v1/backtests/{run_id}/regimes", {
        params: { path: { run_id: runId }, query: { result: resultId } },
      }),
    ),
  );
  return (
    <Card>
      <CardHeader>
        <div>
          <CardTitle>Metrics per regime</CardTitle>
          <CardDescription>Causal (filtered) labels of the run&apos;s regime model.</CardDescription>
        </div>
      </CardHeader>
      <CardContent>
        <QueryState
          query={regimes}
          isEmpty={(r) => r.regimes.length === 0}
          empty={<p className="text-sm text-muted-foreground">This run has no regime model (choose one in the form).</p>}
        >
          {(r) => (
            <Table aria-label="Metrics per regime">
              <TableHeader>
                <TableRow>
                  <TableHead>Regime</TableHead>
                  {REGIME_METRICS.map((m) => (
                    <TableHead key={m}>{m}</TableHead>
                  ))}
                </TableRow>
              </TableHeader>
              <TableBody>
                {r.regimes.map((row) => (
                  <TableRow key={row.regime}>
                    <TableCell className="font-medium">{row.regime}</TableCell>
                    {REGIME_METRICS.map((m) => (
                      <TableCell key={m}>{formatMetric(m, row.metrics[m])}</TableCell>
                    ))}
                  </TableRow>
                ))}
              </TableBody>
            </Table>
          )}
        </QueryState>
      </CardContent>
    </Card>
  );
}
