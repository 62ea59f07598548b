import { PageHeader } from "@/components/app-shell";
import { IngestStatus } from "@/app/components/ingest-status";
import { LatestAlerts } from "@/app/components/latest-alerts";
import { RegimeHeatmap } from "@/app/components/regime-heatmap";

export default function OverviewPage() {
  return (
    <>
      <PageHeader title="Overview" description="Current regimes of the watchlist, latest alerts and data freshness." />
      <div className="grid gap-4 xl:grid-cols-3">
        <div className="xl:col-span-2">
          <RegimeHeatmap />
        </div>
        <div className="flex flex-col gap-4">
          <IngestStatus />
          <LatestAlerts />
        </div>
      </div>
    </>
  );
}
