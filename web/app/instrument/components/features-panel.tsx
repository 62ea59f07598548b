"use client";

import { QueryState } from "@/components/query-state";
import { Card, CardContent, CardDescription, CardHeader, CardTitle } from "@/components/ui/card";
import { Table, TableBody, TableCell, TableHead, TableHeader, TableRow } from "@/components/ui/table";
import { api, unwrap, type Schemas } from "@/lib/api/client";
import { useApiQuery } from "@/lib/api/hooks";
import { formatDate, formatNumber } from "@/lib/format";

/** The newest value of each feature and its change over the window. */
export function latestFeatures(series: Schemas["FeatureSeries"]) {
  return series.features.map((name) => {
    const values = series.values[name] ?? [];
    let last: number | null = null;
    let first: number | null = null;
    for (const value of values) {
      if (value === null || !Number.isFinite(value)) continue;
      if (first === null) first = value;
      last = value;
    }
    return { name, last, first };
  });
}

export function FeaturesPanel({ symbol, start }: { symbol: string; start: string | undefined }) {
  const features = useApiQuery(["features", symbol, start], async () =>
    unwrap(
      await api.GET("/api/v1/instruments/{symbol}/features", {
        params: { path: { symbol }, query: { start: start ?? null } },
      }),
    ),
  );
  return (
    <Card>
      <CardHeader>
        <div>
          <CardTitle>Features</CardTitle>
          <CardDescription>
            {features.data ? `Newest values, ${formatDate(features.data.ts.at(-1) ?? null)}` : "Newest values"}
          </CardDescription>
        </div>
      </CardHeader>
      <CardContent>
        <QueryState query={features} isEmpty={(f) => f.features.length === 0} rows={5}>
          {(f) => (
            <Table aria-label="Features">
              <TableHeader>
                <TableRow>
                  <TableHead>Feature</TableHead>
                  <TableHead className="text-right">Value</TableHead>
                  <TableHead className="text-right">Window start</TableHead>
                </TableRow>
              </TableHeader>
              <TableBody>
                {latestFeatures(f).map((row) => (
                  <TableRow key={row.name}>
                    <TableCell className="font-mono text-xs">{row.name}</TableCell>
                    <TableCell className="text-right">{formatNumber(row.last, 4)}</TableCell>
                    <TableCell className="text-right text-muted-foreground">{formatNumber(row.first, 4)}</TableCell>
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
