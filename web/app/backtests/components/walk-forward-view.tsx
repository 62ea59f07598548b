"use client";

import { Card, CardContent, CardDescription, CardHeader, CardTitle } from "@/components/ui/card";
import { Table, TableBody, TableCell, TableHead, TableHeader, TableRow } from "@/components/ui/table";
import type { Schemas } from "@/lib/api/client";

function foldParams(params: unknown): string {
  if (typeof params !== "object" || params === null) return String(params);
  return Object.entries(params as Record<string, unknown>)
    .filter(([name]) => name !== "kind")
    .map(([name, value]) => `${name}=${JSON.stringify(value)}`)
    .join(" ");
}

/** The parameters chosen in each out-of-sample fold and how often each set won (stability). */
export function WalkForwardView({
  spec,
  results,
}: {
  spec: Record<string, unknown>;
  results: Schemas["BacktestResult"][];
}) {
  return (
    <Card>
      <CardHeader>
        <div>
          <CardTitle>Walk-forward</CardTitle>
          <CardDescription>
            {String(spec.mode ?? "rolling")} windows: train {String(spec.train)} bars, test {String(spec.test)} bars, chosen by{" "}
            {String(spec.metric ?? "sharpe")}. The equity and metrics above are out of sample.
          </CardDescription>
        </div>
      </CardHeader>
      <CardContent className="grid gap-4 md:grid-cols-2">
        {results.map((result) => {
          const folds = Array.isArray(result.params) ? result.params : [result.params];
          const counts = new Map<string, number>();
          for (const fold of folds) counts.set(foldParams(fold), (counts.get(foldParams(fold)) ?? 0) + 1);
          return (
            <div key={result.id}>
              <h3 className="mb-2 text-sm font-semibold">{result.symbol ?? "portfolio"}: parameter stability</h3>
              <Table aria-label={`Walk-forward parameter stability ${result.symbol ?? ""}`}>
                <TableHeader>
                  <TableRow>
                    <TableHead>Parameters</TableHead>
                    <TableHead className="text-right">Folds chosen</TableHead>
                  </TableRow>
                </TableHeader>
                <TableBody>
                  {[...counts.entries()]
                    .sort((a, b) => b[1] - a[1])
                    .map(([params, count]) => (
                      <TableRow key={params}>
                        <TableCell className="font-mono text-xs">{params}</TableCell>
                        <TableCell className="text-right">
                          {count} / {folds.length}
                        </TableCell>
                      </TableRow>
                    ))}
                </TableBody>
              </Table>
              <p className="mt-2 text-xs text-muted-foreground">
                Fold sequence: {folds.map((f, i) => `#${i + 1} ${foldParams(f)}`).slice(0, 6).join(" → ")}
                {folds.length > 6 ? " …" : ""}
              </p>
            </div>
          );
        })}
      </CardContent>
    </Card>
  );
}
