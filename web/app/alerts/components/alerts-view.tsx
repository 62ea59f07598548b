"use client";

import { useQueryClient } from "@tanstack/react-query";
import { useCallback, useState } from "react";
import { toast } from "sonner";
import { PageHeader } from "@/components/app-shell";
import type { Schemas } from "@/lib/api/client";
import { LiveFeed } from "@/app/alerts/components/live-feed";
import { RuleForm } from "@/app/alerts/components/rule-form";
import { RulesTable } from "@/app/alerts/components/rules-table";
import { useAlertStream, type LiveEvent } from "@/app/alerts/components/use-alert-stream";

const FEED_LENGTH = 50;

export function AlertsView() {
  const [editing, setEditing] = useState<Schemas["AlertRule"] | null>(null);
  const [events, setEvents] = useState<LiveEvent[]>([]);
  const queryClient = useQueryClient();
  const onEvent = useCallback(
    (event: LiveEvent) => {
      setEvents((previous) => [event, ...previous].slice(0, FEED_LENGTH));
      const title = `${event.test ? "[TEST] " : ""}${event.rule ?? "alert"} · ${event.symbol ?? ""}`;
      const show = event.severity === "critical" ? toast.error : event.severity === "warning" ? toast.warning : toast.info;
      show(title, { description: event.message });
      if (!event.test) void queryClient.invalidateQueries({ queryKey: ["alert-events"] });
    },
    [queryClient],
  );
  const status = useAlertStream(onEvent);

  return (
    <>
      <PageHeader title="Alerts" description="Rules that watch regimes, levels, drawdowns and signals; new events arrive live." />
      <div className="grid gap-4 xl:grid-cols-3">
        <div className="flex flex-col gap-4 xl:col-span-2">
          <RulesTable onEdit={setEditing} />
          <LiveFeed events={events} status={status} />
        </div>
        <RuleForm key={editing?.id ?? "new"} rule={editing} onDone={() => setEditing(null)} />
      </div>
    </>
  );
}
