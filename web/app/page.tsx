import { connection } from "next/server";
import { HealthCard } from "@/components/health-card";
import { fetchHealth } from "@/lib/api/health";

export default async function HomePage() {
  // Render per request: health is live data and the API URL is a runtime setting.
  await connection();
  const health = await fetchHealth();

  return (
    <main className="mx-auto flex w-full max-w-3xl flex-1 flex-col gap-8 px-6 py-16">
      <div>
        <h1 className="text-2xl font-semibold tracking-tight">RegimeLab</h1>
        <p className="mt-1 text-sm text-neutral-500">Market-regime research and monitoring</p>
      </div>
      <HealthCard result={health} />
    </main>
  );
}
