"use client";

import { Radio } from "lucide-react";
import { EmptyState, QueryState } from "@/components/query-state";
import { Badge, StatusBadge } from "@/components/ui/badge";
import { Card, CardContent, CardDescription, CardHeader, CardTitle } from "@/components/ui/card";
import { api, unwrap } from "@/lib/api/client";
import { useApiQuery } from "@/lib/api/hooks";
import { formatDate, formatDateTime } from "@/lib/format";
import type { LiveEvent, StreamStatus } from "@/app/alerts/components/use-alert-stream";

const STATUS_TONE = { live: "good", connecting: "neutral", reconnecting: "warn", off: "neutral" } as const;

export function LiveFeed({ events, status }: { events: LiveEvent[]; status: StreamStatus }) {
  const history = useApiQuery(["alert-events", 20], async () =>
    unwrap(await api.GET("/api/v1/alerts/events", { params: { query: { limit: 20 } } })),
  );
  return (
    <Card>
      <CardHeader>
        <div>
          <CardTitle>Event feed</CardTitle>
          <CardDescription>Live from the SSE stream, then the recorded history.</CardDescription>
        </div>
        <Badge tone={STATUS_TONE[status]} data-testid="stream-status">
          <Radio className="size-3" aria-hidden /> {status}
        </Badge>
      </CardHeader>
      <CardContent>
        <ul className="divide-y divide-border text-sm" aria-live="polite" aria-label="Live alert events" data-testid="live-feed">
          {events.map((event, i) => (
            <li key={`${event.dedupe_key}-${i}`} className="flex items-start gap-2 py-2" data-testid="live-event">
              <StatusBadge status={event.severity} />
              {event.test ? <Badge tone="info">test</Badge> : <Badge tone="good">live</Badge>}
              <div className="min-w-0">
                <p className="font-medium break-words">{event.message}</p>
                <p className="text-xs text-muted-foreground">
                  {event.rule} · {event.symbol ?? "—"} · {formatDateTime(event.created_at)}
                </p>
              </div>
            </li>
          ))}
        </ul>
        <h3 className="mt-4 mb-1 text-xs font-medium text-muted-foreground uppercase">Recorded events</h3>
        <QueryState
          query={history}
          isEmpty={(page) => page.items.length === 0}
          empty={<EmptyState title="No recorded events yet">Evaluate the rules or wait for the scheduler.</EmptyState>}
        >
          {(page) => (
            <ul className="divide-y divide-border text-sm">
              {page.items.map((event) => (
                <li key={event.id} className="flex items-start gap-2 py-2">
                  <StatusBadge status={event.severity} />
                  <div className="min-w-0">
                    <p className="break-words">{event.message}</p>
                    <p className="text-xs text-muted-foreground">
                      {event.rule} · {event.symbol ?? "—"} · bar {formatDate(event.ts)}
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
