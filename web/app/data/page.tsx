import { PageHeader } from "@/components/app-shell";
import { IngestRuns } from "@/app/data/components/ingest-runs";
import { ProviderTtls } from "@/app/data/components/provider-ttls";
import { SchedulerJobs } from "@/app/data/components/scheduler-jobs";

export default function DataPage() {
  return (
    <>
      <PageHeader title="Data" description="Providers and cache TTLs, ingest runs with their data-quality flags, scheduled jobs." />
      <div className="grid gap-4 xl:grid-cols-2">
        <ProviderTtls />
        <SchedulerJobs />
        <div className="xl:col-span-2">
          <IngestRuns />
        </div>
      </div>
    </>
  );
}
