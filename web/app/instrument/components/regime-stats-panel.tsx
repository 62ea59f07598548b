"use client";

import { QueryState } from "@/components/query-state";
import { Card, CardContent, CardDescription, CardHeader, CardTitle } from "@/components/ui/card";
import { Table, TableBody, TableCell, TableHead, TableHeader, TableRow } from "@/components/ui/table";
import type { Schemas } from "@/lib/api/client";
import { formatNumber, formatPercent } from "@/lib/format";
import { regimeColor, regimeLabel } from "@/lib/regimes";

export function RegimeStatsPanel({
  query,
}: {
  query: { data: Schemas["RegimeStats"] | undefined; error: Error | null; isPending: boolean };
}) {
  return (
    <Card>
      <CardHeader>
        <div>
          <CardTitle>Regime statistics</CardTitle>
          <CardDescription>
            Annualized return and volatility per regime over the fit window
            {query.data ? ` (${(query.data.n_obs ?? 0).toLocaleString("en-US")} bars, run ${query.data.run_id})` : ""}.
          </CardDescription>
        </div>
      </CardHeader>
      <CardContent>
        <QueryState query={query} rows={3}>
          {(stats) => (
            <Table aria-label="Regime statistics">
              <TableHeader>
                <TableRow>
                  <TableHead>Regime</TableHead>
                  <TableHead>Time share</TableHead>
                  <TableHead>Mean return</TableHead>
                  <TableHead>Volatility</TableHead>
                  <TableHead>Sharpe</TableHead>
                  <TableHead>Spells</TableHead>
                  <TableHead>Mean / max duration</TableHead>
                  <TableHead>Stay probability</TableHead>
                </TableRow>
              </TableHeader>
              <TableBody>
                {stats.regimes.map((r) => (
                  <TableRow key={r.regime}>
                    <TableCell>
                      <span className="flex items-center gap-2 font-medium">
                        <span className="inline-block size-3 rounded-sm" style={{ backgroundColor: regimeColor(r.regime, stats.n_states) }} />
                        {regimeLabel(r.regime, r.name)}
                      </span>
                    </TableCell>
                    <TableCell>{formatPercent(r.share_of_time)}</TableCell>
                    <TableCell>{formatPercent(r.mean_return)}</TableCell>
                    <TableCell>{formatPercent(r.volatility)}</TableCell>
                    <TableCell>{formatNumber(r.sharpe)}</TableCell>
                    <TableCell>{r.spells}</TableCell>
                    <TableCell>
                      {formatNumber(r.mean_duration, 1)} / {r.max_duration} bars
                    </TableCell>
                    <TableCell>{formatPercent(stats.transition_matrix[r.regime]?.[r.regime] ?? null)}</TableCell>
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
