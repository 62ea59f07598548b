import { ColorType, type DeepPartial, type TimeChartOptions } from "lightweight-charts";

/** The look every time chart shares: transparent background, theme-aware text and grid,
 * no borders, and bars thin enough that "All" fits decades of daily data. */
export function baseChartOptions(dark: boolean): DeepPartial<TimeChartOptions> {
  return {
    autoSize: true,
    layout: {
      background: { type: ColorType.Solid, color: "transparent" },
      textColor: dark ? "#d4d4d8" : "#3f3f46",
      attributionLogo: false,
    },
    grid: {
      vertLines: { color: dark ? "#27272a" : "#f4f4f5" },
      horzLines: { color: dark ? "#27272a" : "#f4f4f5" },
    },
    rightPriceScale: { borderVisible: false },
    timeScale: { borderVisible: false, minBarSpacing: 0.05 },
  };
}
