"use client";

import { AreaSeries, createChart, LineSeries, type UTCTimestamp } from "lightweight-charts";
import { useEffect, useRef } from "react";
import { baseChartOptions } from "@/components/chart-options";
import { useTheme } from "@/components/theme";

export interface LineSeriesData {
  name: string;
  color: string;
  points: { time: number; value: number }[];
  area?: boolean;
}

/** Lines (or an area) over a shared UTC time axis. */
export function LineChart({
  series,
  height = 260,
  percent = false,
  testId,
  label,
}: {
  series: LineSeriesData[];
  height?: number;
  percent?: boolean;
  testId?: string;
  label: string;
}) {
  const container = useRef<HTMLDivElement>(null);
  const { dark } = useTheme();

  useEffect(() => {
    const element = container.current;
    if (!element) return;
    const chart = createChart(element, {
      ...baseChartOptions(dark),
      localization: percent ? { priceFormatter: (v: number) => `${(v * 100).toFixed(1)}%` } : {},
    });
    for (const line of series) {
      const data = line.points.map((p) => ({ time: p.time as UTCTimestamp, value: p.value }));
      if (line.area) {
        chart
          .addSeries(AreaSeries, {
            lineColor: line.color,
            topColor: `${line.color}11`,
            bottomColor: `${line.color}66`,
            lineWidth: 1,
            title: line.name,
            invertFilledArea: true,
          })
          .setData(data);
      } else {
        chart.addSeries(LineSeries, { color: line.color, lineWidth: 2, title: line.name }).setData(data);
      }
    }
    chart.timeScale().fitContent();
    return () => chart.remove();
  }, [series, dark, percent]);

  return <div ref={container} style={{ height }} className="w-full" data-testid={testId} role="img" aria-label={label} />;
}
