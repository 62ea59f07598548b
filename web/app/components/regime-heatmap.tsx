"use client";

import { useQueries } from "@tanstack/react-query";
import { Sparkle } from "lucide-react";
import Link from "next/link";
import { useApiKey } from "@/components/api-key-provider";
import { QueryState } from "@/components/query-state";
import { Card, CardContent, CardDescription, CardHeader, CardTitle } from "@/components/ui/card";
import { api, unwrap } from "@/lib/api/client";
import { useApiQuery, useRegimeModels } from "@/lib/api/hooks";
import { formatDate, formatPercent } from "@/lib/format";
import { buildHeatmap, cellKey, RECENT_CHANGE_DAYS, regimeLabel } from "@/lib/regimes";

export function RegimeHeatmap() {
  const { apiKey, ready } = useApiKey();
  // The configured model's snapshot first (no waterfall), then the other fitted models' columns.
  const primary = useApiQuery(["snapshot", "default"], async () =>
    unwrap(await api.GET("/api/v1/regimes/snapshot")),
  );
  const models = useRegimeModels();
  const others = (models.data ?? []).filter((model) => model !== primary.data?.model);
  const snapshots = useQueries({
    queries: others.map((model) => ({
      queryKey: ["snapshot", model],
      queryFn: async () => unwrap(await api.GET("/api/v1/regimes/snapshot", { params: { query: { model } } })),
      enabled: ready && apiKey !== null && primary.data !== undefined,
    })),
  });
  const error = primary.error ?? snapshots.find((s) => s.error)?.error ?? null;
  const data = primary.data
    ? buildHeatmap([primary.data, ...snapshots.flatMap((s) => (s.data ? [s.data] : []))])
    : undefined;

  return (
    <Card>
      <CardHeader>
        <div>
          <CardTitle>Regime heatmap</CardTitle>
          <CardDescription>
            Filtered (causal) regime per symbol and model; <Sparkle className="inline size-3" aria-label="changed" /> marks a
            change in the last {RECENT_CHANGE_DAYS} bars.
          </CardDescription>
        </div>
      </CardHeader>
      <CardContent>
        <QueryState
          query={{ data, error, isPending: primary.isPending }}
          isEmpty={(heatmap) => heatmap.symbols.length === 0}
          empty={<p className="text-sm text-muted-foreground">No regime model has been fitted yet.</p>}
          rows={3}
        >
          {(heatmap) => (
            <div className="overflow-x-auto">
              <table className="w-full border-separate border-spacing-1 text-sm" aria-label="Regime heatmap">
                <thead>
                  <tr>
                    <th scope="col" className="px-2 text-left text-xs font-medium text-muted-foreground">
                      Symbol
                    </th>
                    {heatmap.models.map((model) => (
                      <th key={model} scope="col" className="px-2 text-left text-xs font-medium text-muted-foreground">
                        {model}
                      </th>
                    ))}
                  </tr>
                </thead>
                <tbody>
                  {heatmap.symbols.map((symbol) => (
                    <tr key={symbol}>
                      <th scope="row" className="px-2 text-left font-semibold">
                        <Link className="hover:underline" href={`/instrument?symbol=${encodeURIComponent(symbol)}`}>
                          {symbol}
                        </Link>
                      </th>
                      {heatmap.models.map((model) => {
                        const cell = heatmap.cells.get(cellKey(symbol, model));
                        if (!cell)
                          return (
                            <td key={model} className="rounded-md bg-muted px-3 py-2 text-xs text-muted-foreground">
                              no labels
                            </td>
                          );
                        return (
                          <td key={model} className="p-0">
                            <Link
                              href={`/instrument?symbol=${encodeURIComponent(symbol)}&model=${encodeURIComponent(model)}`}
                              data-testid="regime-cell"
                              data-symbol={symbol}
                              data-model={model}
                              data-regime={cell.regime}
                              className="block min-w-40 rounded-md px-3 py-2 text-white outline-none focus-visible:ring-2 focus-visible:ring-ring"
                              style={{ backgroundColor: cell.color }}
                              title={`as of ${formatDate(cell.asOf)}`}
                            >
                              <span className="flex items-center justify-between gap-2 font-semibold">
                                {regimeLabel(cell.regime, cell.name)}
                                {cell.changed ? <Sparkle className="size-4" aria-label="recent change" /> : null}
                              </span>
                              <span className="text-xs opacity-90">
                                p {formatPercent(cell.probability, 0)} · {cell.daysInRegime} days
                              </span>
                            </Link>
                          </td>
                        );
                      })}
                    </tr>
                  ))}
                </tbody>
              </table>
            </div>
          )}
        </QueryState>
      </CardContent>
    </Card>
  );
}
