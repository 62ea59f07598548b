"use client";

import { EmptyState, QueryState } from "@/components/query-state";
import { Card, CardContent, CardHeader, CardTitle } from "@/components/ui/card";
import { Table, TableBody, TableCell, TableHead, TableHeader, TableRow } from "@/components/ui/table";
import { api, unwrap } from "@/lib/api/client";
import { useApiQuery } from "@/lib/api/hooks";
import { formatDate, formatNumber, formatPercent } from "@/lib/format";

export function SignalsPanel({ symbol }: { symbol: string }) {
  const signals = useApiQuery(["signals", symbol], async () =>
    unwrap(await api.GET("/api/v1/signals", { params: { query: { symbol, limit: 20 } } })),
  );
  return (
    <Card>
      <CardHeader>
        <CardTitle>Signals</CardTitle>
      </CardHeader>
      <CardContent>
        <QueryState
          query={signals}
          isEmpty={(page) => page.items.length === 0}
          empty={
            <EmptyState title="No signals for this symbol">
              Save a strategy (<code>backtest --save-as NAME</code>) and compute signals.
            </EmptyState>
          }
        >
          {(page) => (
            <Table aria-label="Signals">
              <TableHeader>
                <TableRow>
                  <TableHead>Strategy</TableHead>
                  <TableHead>Date</TableHead>
                  <TableHead className="text-right">Target</TableHead>
                  <TableHead className="text-right">Regime</TableHead>
                </TableRow>
              </TableHeader>
              <TableBody>
                {page.items.map((s) => (
                  <TableRow key={`${s.strategy}-${s.ts}`}>
                    <TableCell>{s.strategy}</TableCell>
                    <TableCell>{formatDate(s.ts)}</TableCell>
                    <TableCell className="text-right">{formatNumber(s.target, 2)}</TableCell>
                    <TableCell className="text-right">
                      {s.regime ?? "—"} {s.regime_prob != null ? `(${formatPercent(s.regime_prob, 0)})` : ""}
                    </TableCell>
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
