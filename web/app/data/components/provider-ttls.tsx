"use client";

import { useMutation, useQueryClient } from "@tanstack/react-query";
import { Check, RotateCcw } from "lucide-react";
import { useState } from "react";
import { toast } from "sonner";
import { QueryState } from "@/components/query-state";
import { Badge } from "@/components/ui/badge";
import { Button } from "@/components/ui/button";
import { Card, CardContent, CardDescription, CardHeader, CardTitle } from "@/components/ui/card";
import { Input } from "@/components/ui/input";
import { Table, TableBody, TableCell, TableHead, TableHeader, TableRow } from "@/components/ui/table";
import { api, unwrap, type Schemas } from "@/lib/api/client";
import { useApiQuery } from "@/lib/api/hooks";
import { formatDuration } from "@/lib/format";

function TtlEditor({ ttl }: { ttl: Schemas["ProviderTtl"] }) {
  const queryClient = useQueryClient();
  const [value, setValue] = useState(String(ttl.ttl_seconds));
  const seconds = Number(value);
  const valid = value.trim() !== "" && Number.isInteger(seconds) && seconds >= 0;
  const path = { provider: ttl.provider, dataset: ttl.dataset };
  const done = () => void queryClient.invalidateQueries({ queryKey: ["provider-ttls"] });
  const save = useMutation({
    mutationFn: async () =>
      unwrap(await api.PUT("/api/v1/providers/{provider}/ttls/{dataset}", { params: { path }, body: { ttl_seconds: seconds } })),
    onSuccess: () => (toast.success(`${ttl.provider}/${ttl.dataset}: TTL ${formatDuration(seconds)}`), done()),
    onError: (error) => toast.error(error.message),
  });
  const reset = useMutation({
    mutationFn: async () => unwrap(await api.DELETE("/api/v1/providers/{provider}/ttls/{dataset}", { params: { path } })),
    onSuccess: () => (toast.success(`${ttl.provider}/${ttl.dataset}: back to the default TTL`), done()),
    onError: (error) => toast.error(error.message),
  });
  const label = `TTL seconds of ${ttl.provider} ${ttl.dataset}`;
  return (
    <form
      className="flex items-center gap-1"
      onSubmit={(e) => {
        e.preventDefault();
        if (valid) save.mutate();
      }}
    >
      <Input aria-label={label} aria-invalid={!valid || undefined} className="h-8 w-20" inputMode="numeric" value={value} onChange={(e) => setValue(e.target.value)} />
      <Button type="submit" size="icon" variant="ghost" aria-label={`Save ${label}`} disabled={!valid || seconds === ttl.ttl_seconds || save.isPending}>
        <Check />
      </Button>
      {ttl.source === "table" ? (
        <Button type="button" size="icon" variant="ghost" aria-label={`Reset ${label}`} onClick={() => reset.mutate()}>
          <RotateCcw />
        </Button>
      ) : null}
    </form>
  );
}

export function ProviderTtls() {
  const ttls = useApiQuery(["provider-ttls"], async () =>
    unwrap(await api.GET("/api/v1/providers/ttls", { params: { query: { limit: 1000 } } })),
  );
  const providers = useApiQuery(["providers"], async () =>
    unwrap(await api.GET("/api/v1/providers", { params: { query: { limit: 1000 } } })),
  );
  const info = new Map((providers.data?.items ?? []).map((p) => [p.name, p]));
  return (
    <Card>
      <CardHeader>
        <div>
          <CardTitle>Providers and cache TTLs</CardTitle>
          <CardDescription>0 always calls the provider; above 0 serves the cached answer until it expires (admin key).</CardDescription>
        </div>
      </CardHeader>
      <CardContent>
        <QueryState query={ttls} rows={6}>
          {(page) => (
            <Table aria-label="Provider TTLs">
              <TableHeader>
                <TableRow>
                  <TableHead>Provider</TableHead>
                  <TableHead>Dataset</TableHead>
                  <TableHead>Source</TableHead>
                  <TableHead>TTL (seconds)</TableHead>
                </TableRow>
              </TableHeader>
              <TableBody>
                {page.items.map((ttl) => {
                  const provider = info.get(ttl.provider);
                  return (
                    <TableRow key={`${ttl.provider}/${ttl.dataset}`}>
                      <TableCell>
                        <span className="font-medium" title={provider?.description}>
                          {ttl.provider}
                        </span>{" "}
                        {provider && !provider.credentials_configured ? <Badge tone="warn">no key</Badge> : null}
                        {provider?.network === false ? <Badge>offline</Badge> : null}
                      </TableCell>
                      <TableCell>{ttl.dataset}</TableCell>
                      <TableCell>
                        <Badge tone={ttl.source === "table" ? "info" : "neutral"}>{ttl.source}</Badge>
                      </TableCell>
                      <TableCell>
                        <div className="flex items-center gap-2">
                          <TtlEditor key={ttl.ttl_seconds} ttl={ttl} />
                          <span className="text-xs text-muted-foreground">{formatDuration(ttl.ttl_seconds)}</span>
                        </div>
                      </TableCell>
                    </TableRow>
                  );
                })}
              </TableBody>
            </Table>
          )}
        </QueryState>
      </CardContent>
    </Card>
  );
}
