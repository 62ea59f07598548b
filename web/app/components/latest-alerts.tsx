"use client";

import Link from "next/link";
import { EmptyState, QueryState } from "@/components/query-state";
import { StatusBadge } from "@/components/ui/badge";
import { Card, CardContent, CardHeader, CardTitle } from "@/components/ui/card";
import { api, unwrap } from "@/lib/api/client";
import { useApiQuery } from "@/lib/api/hooks";
import { formatDate } from "@/lib/format";

export function LatestAlerts() {
  const events = useApiQuery(["alert-events", 8], async () =>
    unwrap(await api.GET("/api/v1/alerts/events", { params: { query: { limit: 8 } } })),
  );
  return (
    <Card>
      <CardHeader>
        <CardTitle>Latest alerts</CardTitle>
        <Link href="/alerts" className="text-xs text-muted-foreground hover:underline">
          All alerts
        </Link>
      </CardHeader>
      <CardContent>
        <QueryState
          query={events}
          isEmpty={(page) => page.items.length === 0}
          empty={<EmptyState title="No alerts have fired">Create a rule on the Alerts page.</EmptyState>}
        >
          {(page) => (
            <ul className="divide-y divide-border text-sm">
              {page.items.map((event) => (
                <li key={event.id} className="flex items-start gap-2 py-2">
                  <StatusBadge status={event.severity} />
                  <div className="min-w-0">
                    <p className="truncate font-medium" title={event.message}>
                      {event.message}
                    </p>
                    <p className="text-xs text-muted-foreground">
                      {event.rule} · {event.symbol ?? "—"} · {formatDate(event.ts)}
                    </p>
                  </div>
                </li>
              ))}
            </ul>
          )}
        </QueryState>
      </CardContent>
    </Card>
  );
}
