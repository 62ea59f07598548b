"use client";

import { useMutation, useQueryClient } from "@tanstack/react-query";
import { Play } from "lucide-react";
import { toast } from "sonner";
import { QueryState } from "@/components/query-state";
import { Badge, StatusBadge } from "@/components/ui/badge";
import { Button } from "@/components/ui/button";
import { Card, CardContent, CardDescription, CardHeader, CardTitle } from "@/components/ui/card";
import { Table, TableBody, TableCell, TableHead, TableHeader, TableRow } from "@/components/ui/table";
import { api, unwrap } from "@/lib/api/client";
import { useApiQuery } from "@/lib/api/hooks";
import { formatDateTime } from "@/lib/format";

export function SchedulerJobs() {
  const queryClient = useQueryClient();
  const schedules = useApiQuery(["job-schedules"], async () => unwrap(await api.GET("/api/v1/jobs/schedules")));
  const recent = useApiQuery(
    ["job-runs"],
    async () => unwrap(await api.GET("/api/v1/jobs", { params: { query: { limit: 8 } } })),
    { refetchInterval: (q) => (q.state.data?.items.some((j) => j.status === "running" || j.status === "queued") ? 1500 : false) },
  );
  const runNow = useMutation({
    mutationFn: async (name: string) => unwrap(await api.POST("/api/v1/jobs/schedules/{name}/run", { params: { path: { name } } })),
    onSuccess: (job) => {
      toast.success(`${job.job} queued (job ${job.job_id})`);
      void queryClient.invalidateQueries({ queryKey: ["job-runs"] });
    },
    onError: (error) => toast.error(error.message),
  });
  return (
    <Card>
      <CardHeader>
        <div>
          <CardTitle>Scheduler</CardTitle>
          <CardDescription>Scheduled jobs (UTC) and the latest runs.</CardDescription>
        </div>
      </CardHeader>
      <CardContent className="grid gap-4">
        <QueryState query={schedules} rows={5}>
          {(jobs) => (
            <Table aria-label="Scheduled jobs">
              <TableHeader>
                <TableRow>
                  <TableHead>Job</TableHead>
                  <TableHead>Trigger</TableHead>
                  <TableHead>Next run</TableHead>
                  <TableHead />
                </TableRow>
              </TableHeader>
              <TableBody>
                {jobs
                  .filter((job) => job.trigger !== null)
                  .map((job) => (
                    <TableRow key={job.name}>
                      <TableCell>
                        <span className="font-medium" title={job.description}>
                          {job.name}
                        </span>
                      </TableCell>
                      <TableCell>
                        {job.enabled ? <code className="text-xs">{job.trigger}</code> : <Badge>off</Badge>}
                      </TableCell>
                      <TableCell>{formatDateTime(job.next_run_at)}</TableCell>
                      <TableCell>
                        <Button size="sm" variant="outline" onClick={() => runNow.mutate(job.name)} aria-label={`Run ${job.name} now`}>
                          <Play /> Run now
                        </Button>
                      </TableCell>
                    </TableRow>
                  ))}
              </TableBody>
            </Table>
          )}
        </QueryState>
        <QueryState query={recent} isEmpty={(page) => page.items.length === 0} empty={<p className="text-sm text-muted-foreground">No job has run yet.</p>}>
          {(page) => (
            <Table aria-label="Recent job runs">
              <TableHeader>
                <TableRow>
                  <TableHead>Run</TableHead>
                  <TableHead>Job</TableHead>
                  <TableHead>Trigger</TableHead>
                  <TableHead>Status</TableHead>
                  <TableHead>Created</TableHead>
                </TableRow>
              </TableHeader>
              <TableBody>
                {page.items.map((run) => (
                  <TableRow key={run.id}>
                    <TableCell>{run.id}</TableCell>
                    <TableCell>{run.job}</TableCell>
                    <TableCell>{run.trigger}</TableCell>
                    <TableCell title={run.error ?? undefined}>
                      <StatusBadge status={run.status} />
                    </TableCell>
                    <TableCell>{formatDateTime(run.created_at)}</TableCell>
                  </TableRow>
                ))}
              </TableBody>
            </Table>
          )}
        </QueryState>
      </CardContent>
    </Card>
  );
}
