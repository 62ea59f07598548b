"use client";

import { useMutation } from "@tanstack/react-query";
import { Loader2, Play } from "lucide-react";
import { useState, type FormEvent } from "react";
import { toast } from "sonner";
import { Alert } from "@/components/ui/alert";
import { Button } from "@/components/ui/button";
import { Card, CardContent, CardDescription, CardHeader, CardTitle } from "@/components/ui/card";
import { Input } from "@/components/ui/input";
import { Label } from "@/components/ui/label";
import { Select, SelectContent, SelectItem, SelectTrigger, SelectValue } from "@/components/ui/select";
import { Switch } from "@/components/ui/switch";
import { api, unwrap, type Schemas } from "@/lib/api/client";
import { useApiQuery, useRegimeModels } from "@/lib/api/hooks";
import { parseGrid, parseScalar } from "@/lib/backtests";
import { formatPercent } from "@/lib/format";

const NO_REGIMES = "none";

async function waitForJob(jobId: number, onProgress: (progress: number) => void): Promise<Schemas["JobRun"]> {
  for (;;) {
    const job = unwrap(await api.GET("/api/v1/jobs/{job_id}", { params: { path: { job_id: jobId } } }));
    onProgress(job.progress);
    if (job.status === "succeeded" || job.status === "failed" || job.status === "cancelled") return job;
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
}

/** Strategy spec + optional grid and walk-forward; submits a backtest job and follows it. */
export function RunForm({ onDone }: { onDone: (runId: number) => void }) {
  const kinds = useApiQuery(["strategy-kinds"], async () =>
    unwrap(await api.GET("/api/v1/strategies/kinds", { params: { query: { limit: 100 } } })),
  );
  const models = useRegimeModels();
  const [strategy, setStrategy] = useState("sma_crossover");
  const [symbols, setSymbols] = useState("SPX");
  const [params, setParams] = useState<Record<string, string>>({});
  const [grid, setGrid] = useState("");
  const [fees, setFees] = useState("10");
  const [benchmark, setBenchmark] = useState("SPX");
  const [regimeModel, setRegimeModel] = useState<string>("hmm");
  const [walkForward, setWalkForward] = useState(false);
  const [train, setTrain] = useState("504");
  const [test, setTest] = useState("126");
  const [progress, setProgress] = useState<number | null>(null);
  const [formError, setFormError] = useState<string | null>(null);
  const kind = kinds.data?.items.find((k) => k.name === strategy);

  const run = useMutation({
    mutationFn: async (body: Schemas["BacktestCreate"]) => {
      const accepted = unwrap(await api.POST("/api/v1/backtests", { body }));
      setProgress(0);
      const job = await waitForJob(accepted.job_id, setProgress);
      if (job.status !== "succeeded") throw new Error(job.error ?? `backtest ${job.status}`);
      const runId = (job.result as { run_id?: number } | null)?.run_id;
      if (typeof runId !== "number") throw new Error("the job finished without a run id");
      return runId;
    },
    onSuccess: (runId) => {
      toast.success(`Backtest run ${runId} finished`);
      onDone(runId);
    },
    onError: (error) => toast.error(error.message),
    onSettled: () => setProgress(null),
  });

  const submit = (event: FormEvent) => {
    event.preventDefault();
    setFormError(null);
    const symbolList = symbols
      .split(",")
      .map((s) => s.trim())
      .filter(Boolean);
    if (symbolList.length === 0) return setFormError("Enter at least one symbol.");
    const feesBps = Number(fees);
    if (!Number.isFinite(feesBps) || feesBps < 0) return setFormError("Fees must be a number ≥ 0 (basis points).");
    let parsedGrid: Record<string, unknown[]> = {};
    try {
      parsedGrid = parseGrid(grid);
    } catch (error) {
      return setFormError(`Grid: ${(error as Error).message}`);
    }
    const strategyParams: Record<string, unknown> = {};
    for (const [name, value] of Object.entries(params)) {
      if (value.trim() !== "" && !(name in parsedGrid)) strategyParams[name] = parseScalar(value.trim());
    }
    let wf: Schemas["WalkForwardSpec"] | null = null;
    if (walkForward) {
      const [trainBars, testBars] = [Number(train), Number(test)];
      if (!(trainBars > 0 && testBars > 0)) return setFormError("Walk-forward train and test must be positive bar counts.");
      if (Object.keys(parsedGrid).length === 0) return setFormError("Walk-forward needs a grid to choose parameters from.");
      wf = { train: trainBars, test: testBars, mode: "rolling", metric: "sharpe", select: "per_symbol" };
    }
    run.mutate({
      spec: {
        strategy,
        symbols: symbolList,
        params: strategyParams,
        interval: "1d",
        benchmark: benchmark.trim() || null,
        regimes: regimeModel !== NO_REGIMES ? { model: regimeModel } : null,
        execution: { price: "close", fees_bps: feesBps, slippage_bps: 0, rebalance: "on_change", init_cash: 100000 },
      },
      grid: parsedGrid,
      walk_forward: wf,
    });
  };

  return (
    <Card>
      <CardHeader>
        <div>
          <CardTitle>Run a backtest</CardTitle>
          <CardDescription>Targets of bar t trade at t+1; fees follow vectorbt&apos;s convention.</CardDescription>
        </div>
      </CardHeader>
      <CardContent>
        <form className="grid gap-3" onSubmit={submit} aria-label="Run a backtest" noValidate>
          <div className="grid gap-1">
            <Label htmlFor="bt-strategy">Strategy</Label>
            <Select value={strategy} onValueChange={(v) => (setStrategy(v), setParams({}))}>
              <SelectTrigger id="bt-strategy" aria-label="Strategy">
                <SelectValue />
              </SelectTrigger>
              <SelectContent>
                {(kinds.data?.items ?? []).map((k) => (
                  <SelectItem key={k.name} value={k.name}>
                    {k.name}
                  </SelectItem>
                ))}
              </SelectContent>
            </Select>
            {kind ? <p className="text-xs text-muted-foreground">{kind.description}</p> : null}
          </div>
          <div className="grid grid-cols-2 gap-3">
            <div className="grid gap-1">
              <Label htmlFor="bt-symbols">Symbols</Label>
              <Input id="bt-symbols" value={symbols} onChange={(e) => setSymbols(e.target.value)} />
            </div>
            <div className="grid gap-1">
              <Label htmlFor="bt-benchmark">Benchmark</Label>
              <Input id="bt-benchmark" value={benchmark} onChange={(e) => setBenchmark(e.target.value)} />
            </div>
          </div>
          {kind && kind.parameters.length > 0 ? (
            <fieldset className="grid grid-cols-2 gap-3">
              <legend className="mb-1 text-sm font-medium">Parameters</legend>
              {kind.parameters.map((p) => (
                <div key={p.name} className="grid gap-1">
                  <Label htmlFor={`bt-param-${p.name}`} className="font-mono text-xs" title={p.doc ?? undefined}>
                    {p.name}
                  </Label>
                  <Input
                    id={`bt-param-${p.name}`}
                    placeholder={p.default === undefined || p.default === null ? "" : JSON.stringify(p.default)}
                    value={params[p.name] ?? ""}
                    onChange={(e) => setParams({ ...params, [p.name]: e.target.value })}
                  />
                </div>
              ))}
            </fieldset>
          ) : null}
          <div className="grid gap-1">
            <Label htmlFor="bt-grid">Grid (sweep)</Label>
            <Input id="bt-grid" placeholder="fast=10,20,50; slow=100:200:50" value={grid} onChange={(e) => setGrid(e.target.value)} />
          </div>
          <div className="grid grid-cols-2 gap-3">
            <div className="grid gap-1">
              <Label htmlFor="bt-fees">Fees (bps)</Label>
              <Input id="bt-fees" inputMode="decimal" value={fees} onChange={(e) => setFees(e.target.value)} />
            </div>
            <div className="grid gap-1">
              <Label htmlFor="bt-regimes">Per-regime metrics</Label>
              <Select value={regimeModel} onValueChange={setRegimeModel}>
                <SelectTrigger id="bt-regimes" aria-label="Regime model for per-regime metrics">
                  <SelectValue />
                </SelectTrigger>
                <SelectContent>
                  <SelectItem value={NO_REGIMES}>none</SelectItem>
                  {(models.data ?? []).map((m) => (
                    <SelectItem key={m} value={m}>
                      {m}
                    </SelectItem>
                  ))}
                </SelectContent>
              </Select>
            </div>
          </div>
          <div className="flex items-center gap-2">
            <Switch id="bt-wf" checked={walkForward} onCheckedChange={setWalkForward} />
            <Label htmlFor="bt-wf">Walk-forward (out of sample)</Label>
          </div>
          {walkForward ? (
            <div className="grid grid-cols-2 gap-3">
              <div className="grid gap-1">
                <Label htmlFor="bt-train">Train bars</Label>
                <Input id="bt-train" value={train} onChange={(e) => setTrain(e.target.value)} />
              </div>
              <div className="grid gap-1">
                <Label htmlFor="bt-test">Test bars</Label>
                <Input id="bt-test" value={test} onChange={(e) => setTest(e.target.value)} />
              </div>
            </div>
          ) : null}
          {formError ? <Alert>{formError}</Alert> : null}
          {run.error ? <Alert>{run.error.message}</Alert> : null}
          <Button type="submit" disabled={run.isPending}>
            {run.isPending ? <Loader2 className="animate-spin" /> : <Play />}
            {run.isPending ? `Running… ${progress !== null ? formatPercent(progress, 0) : ""}` : "Run backtest"}
          </Button>
          {progress !== null ? (
            <div className="h-1.5 overflow-hidden rounded bg-muted" role="progressbar" aria-valuenow={Math.round(progress * 100)} aria-valuemin={0} aria-valuemax={100} aria-label="Backtest progress">
              <div className="h-full bg-primary transition-all" style={{ width: `${progress * 100}%` }} />
            </div>
          ) : null}
        </form>
      </CardContent>
    </Card>
  );
}
