"use client";

import { useState } from "react";
import { Card, CardContent, CardDescription, CardHeader, CardTitle } from "@/components/ui/card";
import { Select, SelectContent, SelectItem, SelectTrigger, SelectValue } from "@/components/ui/select";
import type { Schemas } from "@/lib/api/client";
import { formatMetric, heatColor, sweepGrid } from "@/lib/backtests";

const METRICS = ["sharpe", "total_return", "cagr", "max_drawdown", "calmar", "trades"];

/** One metric over a two-parameter sweep, the x parameter across and the y parameter down. */
export function SweepHeatmap({ results, gridParams }: { results: Schemas["BacktestResult"][]; gridParams: string[] }) {
  const [metric, setMetric] = useState("sharpe");
  const symbols = [...new Set(results.map((r) => r.symbol ?? ""))];
  const [symbol, setSymbol] = useState(symbols[0] ?? "");
  const grid = sweepGrid(
    results.filter((r) => (r.symbol ?? "") === symbol),
    gridParams,
    metric,
  );
  if (!grid) return null;
  return (
    <Card>
      <CardHeader>
        <div>
          <CardTitle>Sweep heatmap</CardTitle>
          <CardDescription>
            {metric} by {grid.xParam} × {grid.yParam}
            {symbol ? ` for ${symbol}` : ""}
          </CardDescription>
        </div>
        <div className="flex gap-2">
          {symbols.length > 1 ? (
            <Select value={symbol} onValueChange={setSymbol}>
              <SelectTrigger className="w-28" aria-label="Sweep symbol">
                <SelectValue />
              </SelectTrigger>
              <SelectContent>
                {symbols.map((s) => (
                  <SelectItem key={s} value={s}>
                    {s}
                  </SelectItem>
                ))}
              </SelectContent>
            </Select>
          ) : null}
          <Select value={metric} onValueChange={setMetric}>
            <SelectTrigger className="w-36" aria-label="Sweep metric">
              <SelectValue />
            </SelectTrigger>
            <SelectContent>
              {METRICS.map((m) => (
                <SelectItem key={m} value={m}>
                  {m}
                </SelectItem>
              ))}
            </SelectContent>
          </Select>
        </div>
      </CardHeader>
      <CardContent className="overflow-x-auto">
        <table className="border-separate border-spacing-1 text-xs tabular-nums" aria-label="Sweep heatmap" data-testid="sweep-heatmap">
          <thead>
            <tr>
              <th className="px-2 text-left text-muted-foreground">
                {grid.yParam} \ {grid.xParam}
              </th>
              {grid.xs.map((x) => (
                <th key={x} scope="col" className="px-2 text-muted-foreground">
                  {x}
                </th>
              ))}
            </tr>
          </thead>
          <tbody>
            {grid.ys.map((y, yi) => (
              <tr key={y}>
                <th scope="row" className="px-2 text-left text-muted-foreground">
                  {y}
                </th>
                {grid.values[yi]!.map((value, xi) => (
                  <td
                    key={grid.xs[xi]}
                    className="min-w-16 rounded px-2 py-2 text-center font-medium text-white"
                    style={{ backgroundColor: heatColor(value, grid.min, grid.max) }}
                  >
                    {formatMetric(metric, value)}
                  </td>
                ))}
              </tr>
            ))}
          </tbody>
        </table>
      </CardContent>
    </Card>
  );
}
