"use client";

import { EmptyState, QueryState } from "@/components/query-state";
import { Card, CardContent, CardDescription, CardHeader, CardTitle } from "@/components/ui/card";
import { Table, TableBody, TableCell, TableHead, TableHeader, TableRow } from "@/components/ui/table";
import { api, ApiError, unwrap, type Schemas } from "@/lib/api/client";
import { useApiQuery } from "@/lib/api/hooks";
import { fanGeometry } from "@/lib/analogs";
import { formatDate, formatNumber, formatPercent } from "@/lib/format";

const WIDTH = 640;
const HEIGHT = 260;

function FanChart({ result }: { result: Schemas["AnalogSearchResult"] }) {
  const geometry = fanGeometry(result, WIDTH, HEIGHT);
  if (!geometry) return <EmptyState title="No paths to draw" />;
  return (
    <svg
      viewBox={`0 0 ${WIDTH} ${HEIGHT}`}
      className="h-auto w-full text-muted-foreground"
      role="img"
      aria-label={`Fan of what followed the ${result.analogs.length} nearest analogs of ${result.symbol}`}
      data-testid="analogs-fan"
    >
      {geometry.yTicks.map((tick) => (
        <g key={tick.label}>
          <line x1={44} x2={WIDTH - 8} y1={tick.y} y2={tick.y} stroke="currentColor" strokeOpacity={0.15} />
          <text x={40} y={tick.y + 3} textAnchor="end" fontSize={10} fill="currentColor">
            {tick.label}
          </text>
        </g>
      ))}
      {geometry.xTicks.map((tick, i) => (
        <text
          key={tick.label}
          x={tick.x}
          y={HEIGHT - 6}
          textAnchor={i === 0 ? "start" : i === geometry.xTicks.length - 1 ? "end" : "middle"}
          fontSize={10}
          fill="currentColor"
        >
          {tick.label}
        </text>
      ))}
      <line x1={geometry.zeroX} x2={geometry.zeroX} y1={8} y2={HEIGHT - 22} stroke="currentColor" strokeDasharray="3 3" />
      <path d={geometry.outer} fill="#2563eb" fillOpacity={0.15} />
      <path d={geometry.inner} fill="#2563eb" fillOpacity={0.3} />
      <path d={geometry.median} fill="none" stroke="#2563eb" strokeWidth={2} />
      <path d={geometry.query} fill="none" stroke="#f97316" strokeWidth={2} />
    </svg>
  );
}

/** Periods like today and what came next (GET /api/v1/analogs/{symbol}). */
export function AnalogsPanel({ symbol }: { symbol: string }) {
  const analogs = useApiQuery(["analogs", symbol], async () =>
    unwrap(await api.GET("/api/v1/analogs/{symbol}", { params: { path: { symbol }, query: { k: 20, horizons: "5,21,63" } } })),
  );
  const notBuilt = analogs.error instanceof ApiError && analogs.error.status === 404;
  return (
    <Card>
      <CardHeader>
        <div>
          <CardTitle>Analogs</CardTitle>
          <CardDescription>
            {analogs.data
              ? `The ${analogs.data.analogs.length} nearest earlier states to ${formatDate(analogs.data.ts)} (${analogs.data.window}-bar window): the orange line is ${symbol}'s own path, the blue fan what followed the analogs (median, 25–75 % and 10–90 %).`
              : "Periods like today and what came next."}
          </CardDescription>
        </div>
      </CardHeader>
      <CardContent>
        {notBuilt ? (
          <EmptyState title="No analogs yet">{analogs.error?.message}</EmptyState>
        ) : (
          <QueryState query={analogs} rows={5}>
            {(result) => (
              <div className="grid gap-4 lg:grid-cols-2">
                <FanChart result={result} />
                <div className="grid gap-3">
                  <Table aria-label="Analog outcomes by horizon">
                    <TableHeader>
                      <TableRow>
                        <TableHead>Horizon</TableHead>
                        <TableHead className="text-right">Median</TableHead>
                        <TableHead className="text-right">10–90 %</TableHead>
                        <TableHead className="text-right">Up</TableHead>
                      </TableRow>
                    </TableHeader>
                    <TableBody>
                      {result.distribution.map((d) => (
                        <TableRow key={d.horizon}>
                          <TableCell>+{d.horizon} bars</TableCell>
                          <TableCell className="text-right">{formatPercent(d.median)}</TableCell>
                          <TableCell className="text-right">
                            {formatPercent(d.q10)} … {formatPercent(d.q90)}
                          </TableCell>
                          <TableCell className="text-right">{formatPercent(d.share_positive, 0)}</TableCell>
                        </TableRow>
                      ))}
                    </TableBody>
                  </Table>
                  <Table aria-label="Nearest analogs">
                    <TableHeader>
                      <TableRow>
                        <TableHead>#</TableHead>
                        <TableHead>Date</TableHead>
                        <TableHead>Symbol</TableHead>
                        <TableHead className="text-right">Distance</TableHead>
                        <TableHead className="text-right">+{result.horizons.at(-1)} bars</TableHead>
                      </TableRow>
                    </TableHeader>
                    <TableBody>
                      {result.analogs.slice(0, 5).map((a) => (
                        <TableRow key={`${a.symbol}-${a.ts}`}>
                          <TableCell>{a.rank}</TableCell>
                          <TableCell>{formatDate(a.ts)}</TableCell>
                          <TableCell>{a.symbol}</TableCell>
                          <TableCell className="text-right">{formatNumber(a.distance, 2)}</TableCell>
                          <TableCell className="text-right">
                            {formatPercent(a.forward_returns[String(result.horizons.at(-1))] ?? null)}
                          </TableCell>
                        </TableRow>
                      ))}
                    </TableBody>
                  </Table>
                </div>
              </div>
            )}
          </QueryState>
        )}
      </CardContent>
    </Card>
  );
}
