"use client";

import {
  CandlestickSeries,
  createChart,
  createSeriesMarkers,
  HistogramSeries,
  type IChartApi,
  type UTCTimestamp,
} from "lightweight-charts";
import { useEffect, useRef } from "react";
import { baseChartOptions } from "@/components/chart-options";
import { useTheme } from "@/components/theme";
import type { Schemas } from "@/lib/api/client";
import { regimeBands, regimeColor, regimeSwitches, toChartTime } from "@/lib/regimes";

/** Candlesticks over translucent regime bands, with a marker at each regime switch. */
export function PriceChart({
  bars,
  labels,
  nStates,
}: {
  bars: Schemas["Bar"][];
  labels: Schemas["RegimeLabel"][];
  nStates: number;
}) {
  const container = useRef<HTMLDivElement>(null);
  const chartRef = useRef<IChartApi | null>(null);
  const { dark } = useTheme();

  useEffect(() => {
    const element = container.current;
    if (!element) return;
    const chart = createChart(element, baseChartOptions(dark));
    chartRef.current = chart;
    const bands = chart.addSeries(HistogramSeries, {
      priceScaleId: "regimes",
      priceLineVisible: false,
      lastValueVisible: false,
      base: 0,
    });
    chart.priceScale("regimes").applyOptions({ scaleMargins: { top: 0, bottom: 0 }, visible: false });
    bands.setData(
      regimeBands(labels, nStates).map((band) => ({ time: band.time as UTCTimestamp, value: 1, color: band.color })),
    );
    const candles = chart.addSeries(CandlestickSeries, {
      upColor: "#16a34a",
      downColor: "#dc2626",
      borderVisible: false,
      wickUpColor: "#16a34a",
      wickDownColor: "#dc2626",
    });
    candles.setData(
      bars.map((bar) => ({
        time: toChartTime(bar.ts) as UTCTimestamp,
        open: bar.open,
        high: bar.high,
        low: bar.low,
        close: bar.close,
      })),
    );
    const switches = regimeSwitches(labels).slice(1);
    createSeriesMarkers(
      candles,
      switches.slice(-40).map((change) => ({
        time: change.time as UTCTimestamp,
        position: "aboveBar" as const,
        shape: "arrowDown" as const,
        color: regimeColor(change.to, nStates),
        text: String(change.to),
      })),
    );
    chart.timeScale().fitContent();
    return () => {
      chart.remove();
      chartRef.current = null;
    };
  }, [bars, labels, nStates, dark]);

  return <div ref={container} className="h-[420px] w-full" data-testid="price-chart" role="img" aria-label="Price chart with regime bands" />;
}

