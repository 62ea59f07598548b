"use client";

import { QueryState } from "@/components/query-state";
import { Card, CardContent, CardDescription, CardHeader, CardTitle } from "@/components/ui/card";
import { api, unwrap } from "@/lib/api/client";
import { useApiQuery } from "@/lib/api/hooks";
import { formatDate, formatPercent } from "@/lib/format";
import { regimeColor } from "@/lib/regimes";

const SHOWN_STEPS = [1, 5, 10, 20];

/** Regime probabilities now and 1, 5, 10 and 20 bars ahead, as stacked bars. */
export function ForecastPanel({ symbol, model }: { symbol: string; model: string }) {
  const forecast = useApiQuery(["forecast", symbol, model], async () =>
    unwrap(await api.GET("/api/v1/regimes/forecast", { params: { query: { symbol, model, horizon: 20 } } })),
  );
  return (
    <Card>
      <CardHeader>
        <div>
          <CardTitle>Regime forecast</CardTitle>
          <CardDescription>
            {forecast.data ? `From ${formatDate(forecast.data.as_of)}, ${model}` : "Probabilities ahead"}
          </CardDescription>
        </div>
      </CardHeader>
      <CardContent>
        <QueryState query={forecast} rows={4}>
          {(f) => {
            const rows = [
              { label: "now", probs: f.current },
              ...f.steps.filter((s) => SHOWN_STEPS.includes(s.step)).map((s) => ({ label: `+${s.step}`, probs: s.probs })),
            ];
            return (
              <div className="grid gap-2" data-testid="forecast">
                {rows.map((row) => (
                  <div key={row.label} className="flex items-center gap-2 text-xs">
                    <span className="w-8 text-right text-muted-foreground tabular-nums">{row.label}</span>
                    <div className="flex h-5 flex-1 overflow-hidden rounded">
                      {row.probs.map((p, regime) => (
                        <div
                          key={regime}
                          style={{ width: `${p * 100}%`, backgroundColor: regimeColor(regime, f.n_states) }}
                          title={`${f.names[regime] ?? regime}: ${formatPercent(p)}`}
                        />
                      ))}
                    </div>
                    <span className="w-24 truncate tabular-nums">
                      {f.names[row.probs.indexOf(Math.max(...row.probs))] ?? ""} {formatPercent(Math.max(...row.probs), 0)}
                    </span>
                  </div>
                ))}
              </div>
            );
          }}
        </QueryState>
      </CardContent>
    </Card>
  );
}
