"use client";

import { useMutation, useQueryClient } from "@tanstack/react-query";
import type { ColumnDef } from "@tanstack/react-table";
import { Pencil, Send, Trash2, Zap } from "lucide-react";
import { useMemo } from "react";
import { toast } from "sonner";
import { DataTable } from "@/components/data-table";
import { EmptyState, QueryState } from "@/components/query-state";
import { StatusBadge } from "@/components/ui/badge";
import { Button } from "@/components/ui/button";
import { Card, CardContent, CardHeader, CardTitle } from "@/components/ui/card";
import { api, unwrap, type Schemas } from "@/lib/api/client";
import { useApiQuery } from "@/lib/api/hooks";
import { describeCondition } from "@/lib/alerts";

type Rule = Schemas["AlertRule"];

export function RulesTable({ onEdit }: { onEdit: (rule: Rule) => void }) {
  const queryClient = useQueryClient();
  const rules = useApiQuery(["alert-rules"], async () =>
    unwrap(await api.GET("/api/v1/alerts/rules", { params: { query: { limit: 1000 } } })),
  );
  const test = useMutation({
    mutationFn: async (rule: Rule) =>
      unwrap(await api.POST("/api/v1/alerts/rules/{rule_id}/test", { params: { path: { rule_id: rule.id } } })),
    onSuccess: (result) =>
      toast.success(`Test sent for ${result.rule}`, {
        description: result.outcomes.map((o) => `${o.channel}: ${o.ok ? "ok" : o.detail}`).join("; "),
      }),
    onError: (error) => toast.error(error.message),
  });
  const remove = useMutation({
    mutationFn: async (rule: Rule) =>
      unwrap(await api.DELETE("/api/v1/alerts/rules/{rule_id}", { params: { path: { rule_id: rule.id } } })),
    onSuccess: () => void queryClient.invalidateQueries({ queryKey: ["alert-rules"] }),
    onError: (error) => toast.error(error.message),
  });
  const evaluate = useMutation({
    mutationFn: async () => unwrap(await api.POST("/api/v1/alerts/evaluate", { body: null })),
    onSuccess: (job) => toast.info(`Evaluating the enabled rules (job ${job.job_id})`),
    onError: (error) => toast.error(error.message),
  });

  const columns = useMemo<ColumnDef<Rule, unknown>[]>(
    () => [
      {
        accessorKey: "name",
        header: "Name",
        cell: ({ row }) => (
          <div>
            <p className="font-medium">{row.original.name}</p>
            <p className="text-xs text-muted-foreground">
              {(row.original.channels ?? []).map((c) => c.type).join(", ") || "no channel"}
              {row.original.enabled ? "" : " · disabled"}
            </p>
          </div>
        ),
      },
      { id: "condition", header: "Condition", accessorFn: (r) => describeCondition(r.condition) },
      { id: "symbols", header: "Symbols", accessorFn: (r) => (r.watchlist ? "watchlist" : (r.symbols ?? []).join(", ")) },
      { accessorKey: "severity", header: "Severity", cell: ({ row }) => <StatusBadge status={row.original.severity} /> },
      {
        id: "actions",
        header: "",
        enableSorting: false,
        cell: ({ row }) => (
          <div className="flex gap-1">
            <Button size="icon" variant="ghost" aria-label={`Edit ${row.original.name}`} onClick={() => onEdit(row.original)}>
              <Pencil />
            </Button>
            <Button size="icon" variant="ghost" aria-label={`Send a test of ${row.original.name}`} onClick={() => test.mutate(row.original)}>
              <Send />
            </Button>
            <Button
              size="icon"
              variant="ghost"
              aria-label={`Delete ${row.original.name}`}
              onClick={() => {
                if (window.confirm(`Delete the rule ${row.original.name}?`)) remove.mutate(row.original);
              }}
            >
              <Trash2 />
            </Button>
          </div>
        ),
      },
    ],
    [onEdit, test, remove],
  );

  return (
    <Card>
      <CardHeader>
        <CardTitle>Rules</CardTitle>
        <Button size="sm" variant="outline" onClick={() => evaluate.mutate()} disabled={evaluate.isPending}>
          <Zap /> Evaluate now
        </Button>
      </CardHeader>
      <CardContent>
        <QueryState
          query={rules}
          isEmpty={(page) => page.items.length === 0}
          empty={<EmptyState title="No alert rules">Create one with the form.</EmptyState>}
        >
          {(page) => <DataTable label="Alert rules" columns={columns} data={page.items} rowTestId="rule-row" />}
        </QueryState>
      </CardContent>
    </Card>
  );
}
