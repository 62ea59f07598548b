"use client";

import { usePathname, useRouter, useSearchParams } from "next/navigation";
import { PageHeader } from "@/components/app-shell";
import { EmptyState, LoadingRows, QueryState } from "@/components/query-state";
import { Card, CardContent, CardDescription, CardHeader, CardTitle } from "@/components/ui/card";
import { Label } from "@/components/ui/label";
import { Select, SelectContent, SelectItem, SelectTrigger, SelectValue } from "@/components/ui/select";
import { Tabs, TabsList, TabsTrigger } from "@/components/ui/tabs";
import { api, unwrap, type Schemas } from "@/lib/api/client";
import { useApiQuery, useRegimeModels } from "@/lib/api/hooks";
import { formatDate } from "@/lib/format";
import { regimeColor, regimeLabel } from "@/lib/regimes";
import { AnalogsPanel } from "@/app/instrument/components/analogs-panel";
import { FeaturesPanel } from "@/app/instrument/components/features-panel";
import { ForecastPanel } from "@/app/instrument/components/forecast-panel";
import { PriceChart } from "@/app/instrument/components/price-chart";
import { RegimeStatsPanel } from "@/app/instrument/components/regime-stats-panel";
import { SignalsPanel } from "@/app/instrument/components/signals-panel";

const RANGES = { "1Y": 1, "5Y": 5, "10Y": 10, All: null } as const;
type RangeName = keyof typeof RANGES;

/** The first day of a range ending at `last` (YYYY-MM-DD), or undefined for everything. */
function rangeStart(last: string | undefined, range: RangeName): string | undefined {
  const years = RANGES[range];
  if (!last || years === null) return undefined;
  const end = new Date(last);
  end.setUTCFullYear(end.getUTCFullYear() - years);
  return end.toISOString().slice(0, 10);
}

async function fetchLabels(symbol: string, model: string, start: string | undefined) {
  const labels: Schemas["RegimeLabel"][] = [];
  for (let offset = 0; ; offset += 1000) {
    const page = unwrap(
      await api.GET("/api/v1/regimes/labels", {
        params: { query: { symbol, model, start: start ?? null, limit: 1000, offset } },
      }),
    );
    labels.push(...page.items);
    if (labels.length >= page.total || page.items.length === 0) return labels;
  }
}

export function InstrumentView() {
  const params = useSearchParams();
  const router = useRouter();
  const pathname = usePathname();
  const instruments = useApiQuery(["instruments"], async () =>
    unwrap(await api.GET("/api/v1/instruments", { params: { query: { limit: 1000 } } })),
  );
  const models = useRegimeModels();
  const symbol = params.get("symbol") ?? instruments.data?.items[0]?.symbol ?? null;
  const model = params.get("model") ?? models.data?.[0] ?? null;
  const range = (params.get("range") as RangeName | null) ?? "5Y";
  const instrument = instruments.data?.items.find((item) => item.symbol === symbol);
  const last = instrument?.coverage.find((c) => c.interval === "1d")?.last ?? instrument?.coverage[0]?.last;
  const start = rangeStart(last ?? undefined, range in RANGES ? range : "5Y");

  const setParam = (name: string, value: string) => {
    const next = new URLSearchParams(params.toString());
    next.set(name, value);
    if (!next.get("symbol") && symbol) next.set("symbol", symbol);
    router.replace(`${pathname}?${next.toString()}`, { scroll: false });
  };

  const ready = symbol !== null && instrument !== undefined;
  const bars = useApiQuery(
    ["bars", symbol, start],
    async () => {
      const series = unwrap(
        await api.GET("/api/v1/instruments/{symbol}/bars", {
          params: { path: { symbol: symbol! }, query: { start: start ?? null, format: "json" } },
        }),
      );
      if (typeof series === "string") throw new Error("expected JSON bars");
      return series;
    },
    { enabled: ready },
  );
  const labels = useApiQuery(["labels", symbol, model, start], () => fetchLabels(symbol!, model!, start), {
    enabled: ready && model !== null,
  });
  const stats = useApiQuery(
    ["regime-stats", symbol, model],
    async () => unwrap(await api.GET("/api/v1/regimes/stats", { params: { query: { symbol: symbol!, model } } })),
    { enabled: ready && model !== null },
  );
  const nStates = stats.data?.n_states ?? Math.max(2, ...(labels.data ?? []).map((l) => l.regime + 1));
  const current = labels.data?.at(-1);

  return (
    <>
      <PageHeader
        title={instrument ? `${instrument.symbol} · ${instrument.name ?? ""}` : "Instrument"}
        description={
          instrument
            ? `${instrument.asset_class ?? ""} ${instrument.exchange ?? ""} · bars to ${formatDate(last ?? null)} · provider ${instrument.provider ?? "—"}`
            : "Prices, regimes, features, forecasts and signals of one instrument."
        }
        actions={
          <div className="flex flex-wrap items-end gap-3">
            <div className="grid gap-1">
              <Label htmlFor="symbol-select">Symbol</Label>
              <Select value={symbol ?? undefined} onValueChange={(v) => setParam("symbol", v)}>
                <SelectTrigger id="symbol-select" className="w-32" aria-label="Symbol">
                  <SelectValue placeholder="Symbol" />
                </SelectTrigger>
                <SelectContent>
                  {(instruments.data?.items ?? []).map((item) => (
                    <SelectItem key={item.symbol} value={item.symbol}>
                      {item.symbol}
                    </SelectItem>
                  ))}
                </SelectContent>
              </Select>
            </div>
            <div className="grid gap-1">
              <Label htmlFor="model-select">Regime model</Label>
              <Select value={model ?? undefined} onValueChange={(v) => setParam("model", v)}>
                <SelectTrigger id="model-select" className="w-44" aria-label="Regime model">
                  <SelectValue placeholder="Model" />
                </SelectTrigger>
                <SelectContent>
                  {(models.data ?? []).map((name) => (
                    <SelectItem key={name} value={name}>
                      {name}
                    </SelectItem>
                  ))}
                </SelectContent>
              </Select>
            </div>
            <Tabs value={range} onValueChange={(v) => setParam("range", v)}>
              <TabsList aria-label="Date range">
                {Object.keys(RANGES).map((name) => (
                  <TabsTrigger key={name} value={name}>
                    {name}
                  </TabsTrigger>
                ))}
              </TabsList>
            </Tabs>
          </div>
        }
      />
      {instruments.data && symbol !== null && instrument === undefined ? (
        <EmptyState title={`No stored instrument ${symbol}`}>
          Pick one above, or load it: <code>regimelab ingest --provider … --symbols {symbol}</code>.
        </EmptyState>
      ) : instruments.data && symbol === null ? (
        <EmptyState title="No instruments yet">
          Load bars with <code>regimelab ingest</code> (or <code>regimelab up</code> seeds SPX and IXIC).
        </EmptyState>
      ) : (
      <div className="grid gap-4 xl:grid-cols-3">
        <Card className="xl:col-span-2">
          <CardHeader>
            <div>
              <CardTitle>Price and regimes</CardTitle>
              <CardDescription>
                Daily candles over filtered {model ?? ""} regimes; arrows mark switches.
              </CardDescription>
            </div>
            {current ? (
              <span
                className="rounded-md px-2 py-1 text-xs font-semibold text-white"
                style={{ backgroundColor: regimeColor(current.regime, nStates) }}
                data-testid="current-regime"
              >
                now: {regimeLabel(current.regime, current.name)}
              </span>
            ) : null}
          </CardHeader>
          <CardContent>
            <QueryState
              query={{
                data: bars.data && labels.data ? { bars: bars.data, labels: labels.data } : undefined,
                error: instruments.error ?? bars.error ?? labels.error,
                isPending: bars.isPending || labels.isPending,
              }}
              isEmpty={(d) => d.bars.bars.length === 0}
              rows={10}
            >
              {(d) => (
                <>
                  <PriceChart bars={d.bars.bars} labels={d.labels} nStates={nStates} />
                  <RegimeLegend nStates={nStates} names={stats.data?.regimes.map((r) => r.name ?? null) ?? []} />
                </>
              )}
            </QueryState>
          </CardContent>
        </Card>
        <div className="flex flex-col gap-4">
          {ready && model ? <ForecastPanel symbol={symbol} model={model} /> : <LoadingRows />}
          {ready ? <FeaturesPanel symbol={symbol} start={start} /> : null}
        </div>
        <div className="xl:col-span-2">
          <RegimeStatsPanel query={stats} />
        </div>
        {ready ? <SignalsPanel symbol={symbol} /> : null}
        {ready ? (
          <div className="xl:col-span-3">
            <AnalogsPanel symbol={symbol} />
          </div>
        ) : null}
      </div>
      )}
    </>
  );
}

function RegimeLegend({ nStates, names }: { nStates: number; names: (string | null)[] }) {
  return (
    <ul className="mt-2 flex flex-wrap gap-3 text-xs" aria-label="Regime colours">
      {Array.from({ length: nStates }, (_, regime) => (
        <li key={regime} className="flex items-center gap-1">
          <span className="inline-block size-3 rounded-sm" style={{ backgroundColor: regimeColor(regime, nStates) }} />
          {regimeLabel(regime, names[regime])}
        </li>
      ))}
    </ul>
  );
}
