"use client";

import { useMutation, useQueryClient } from "@tanstack/react-query";
import { Eye, Save } from "lucide-react";
import { useState, type FormEvent, type ReactNode } from "react";
import { toast } from "sonner";
import { Alert } from "@/components/ui/alert";
import { Button } from "@/components/ui/button";
import { Card, CardContent, CardDescription, CardHeader, CardTitle } from "@/components/ui/card";
import { Input } from "@/components/ui/input";
import { Label } from "@/components/ui/label";
import { Select, SelectContent, SelectItem, SelectTrigger, SelectValue } from "@/components/ui/select";
import { Switch } from "@/components/ui/switch";
import { api, unwrap, type Schemas } from "@/lib/api/client";
import { buildRuleSpec, CONDITION_KINDS, EMPTY_RULE_FORM, ruleToForm, type FieldErrors, type RuleForm as Form } from "@/lib/alerts";
import { formatDate } from "@/lib/format";

const MODELS = ["hmm", "rules", "markov_switching", "jump", "changepoint"] as const;
const OPS = ["above", "below", "crosses_above", "crosses_below"] as const;

function Field({
  id,
  label,
  error,
  children,
  hint,
}: {
  id: string;
  label: string;
  error?: string;
  hint?: string;
  children: ReactNode;
}) {
  return (
    <div className="grid gap-1">
      <Label htmlFor={id}>{label}</Label>
      {children}
      {error ? (
        <p id={`${id}-error`} className="text-xs text-destructive">
          {error}
        </p>
      ) : hint ? (
        <p className="text-xs text-muted-foreground">{hint}</p>
      ) : null}
    </div>
  );
}

/** Create or edit a rule; "Preview" backfills it over stored history before saving. */
export function RuleForm({ rule, onDone }: { rule: Schemas["AlertRule"] | null; onDone: () => void }) {
  const queryClient = useQueryClient();
  const [form, setForm] = useState<Form>(() => (rule ? ruleToForm(rule) : EMPTY_RULE_FORM));
  const [errors, setErrors] = useState<FieldErrors>({});
  const [backfillStart, setBackfillStart] = useState("2008-01-01");

  const set = <K extends keyof Form>(name: K, value: Form[K]) => setForm((f) => ({ ...f, [name]: value }));
  const text = (name: keyof Form, label: string, hint?: string, placeholder?: string) => (
    <Field id={`rule-${name}`} label={label} error={errors[name]} hint={hint}>
      <Input
        id={`rule-${name}`}
        value={String(form[name])}
        placeholder={placeholder}
        aria-invalid={errors[name] ? true : undefined}
        aria-describedby={errors[name] ? `rule-${name}-error` : undefined}
        onChange={(e) => set(name, e.target.value as never)}
      />
    </Field>
  );

  const validated = (): Schemas["AlertRuleSpec"] | null => {
    const result = buildRuleSpec(form);
    if ("errors" in result) {
      setErrors(result.errors);
      return null;
    }
    setErrors({});
    return result.spec;
  };

  const save = useMutation({
    mutationFn: async (spec: Schemas["AlertRuleSpec"]) =>
      rule
        ? unwrap(await api.PUT("/api/v1/alerts/rules/{rule_id}", { params: { path: { rule_id: rule.id } }, body: spec }))
        : unwrap(await api.POST("/api/v1/alerts/rules", { body: spec })),
    onSuccess: (saved) => {
      toast.success(`Rule ${saved.name} ${rule ? "updated" : "created"}`);
      void queryClient.invalidateQueries({ queryKey: ["alert-rules"] });
      setForm(EMPTY_RULE_FORM);
      preview.reset();
      onDone();
    },
  });
  const preview = useMutation({
    mutationFn: async (spec: Schemas["AlertRuleSpec"]) =>
      unwrap(await api.POST("/api/v1/alerts/backfill", { body: { rule: spec, start: backfillStart || null } })),
  });

  const submit = (event: FormEvent) => {
    event.preventDefault();
    const spec = validated();
    if (spec) save.mutate(spec);
  };

  return (
    <Card>
      <CardHeader>
        <div>
          <CardTitle>{rule ? `Edit ${rule.name}` : "New rule"}</CardTitle>
          <CardDescription>Edge-triggered, with confirmation and cooldown (docs/alerts.md).</CardDescription>
        </div>
        {rule ? (
          <Button size="sm" variant="ghost" onClick={onDone}>
            Cancel
          </Button>
        ) : null}
      </CardHeader>
      <CardContent>
        <form className="grid gap-3" onSubmit={submit} aria-label={rule ? "Edit alert rule" : "New alert rule"} noValidate>
          {text("name", "Name", undefined, "spx-turbulence")}
          <Field id="rule-kind" label="Condition">
            <Select value={form.kind} onValueChange={(v) => set("kind", v as Form["kind"])}>
              <SelectTrigger id="rule-kind" aria-label="Condition">
                <SelectValue />
              </SelectTrigger>
              <SelectContent>
                {CONDITION_KINDS.map((k) => (
                  <SelectItem key={k.kind} value={k.kind}>
                    {k.label}
                  </SelectItem>
                ))}
              </SelectContent>
            </Select>
          </Field>
          {form.kind === "regime_change" ? (
            <div className="grid grid-cols-2 gap-3">
              <Field id="rule-model" label="Model">
                <Select value={form.model} onValueChange={(v) => set("model", v)}>
                  <SelectTrigger id="rule-model" aria-label="Model">
                    <SelectValue />
                  </SelectTrigger>
                  <SelectContent>
                    {MODELS.map((m) => (
                      <SelectItem key={m} value={m}>
                        {m}
                      </SelectItem>
                    ))}
                  </SelectContent>
                </Select>
              </Field>
              {text("toRegimes", "Into regimes", "e.g. 2 (empty: any)")}
              {text("fromRegimes", "From regimes", "empty: any")}
              {text("minProbability", "Min probability")}
              {text("confirmBars", "Confirm bars")}
            </div>
          ) : null}
          {form.kind === "threshold" ? (
            <div className="grid grid-cols-2 gap-3">
              {text("feature", "Feature")}
              <Field id="rule-op" label="Operator">
                <Select value={form.op} onValueChange={(v) => set("op", v as Form["op"])}>
                  <SelectTrigger id="rule-op" aria-label="Operator">
                    <SelectValue />
                  </SelectTrigger>
                  <SelectContent>
                    {OPS.map((op) => (
                      <SelectItem key={op} value={op}>
                        {op.replace("_", " ")}
                      </SelectItem>
                    ))}
                  </SelectContent>
                </Select>
              </Field>
              {text("value", "Value")}
              {text("hysteresis", "Hysteresis")}
              {text("confirmBars", "Confirm bars")}
            </div>
          ) : null}
          {form.kind === "drawdown" ? (
            <div className="grid grid-cols-2 gap-3">
              {text("thresholdPct", "Threshold %")}
              {text("lookbackBars", "Lookback bars", "empty: running peak")}
            </div>
          ) : null}
          {form.kind === "volatility_spike" ? (
            <div className="grid grid-cols-3 gap-3">
              {text("window", "Window")}
              {text("baseline", "Baseline")}
              {text("z", "z-score")}
            </div>
          ) : null}
          {form.kind === "signal_change" ? (
            <div className="grid grid-cols-2 gap-3">
              {text("strategy", "Saved strategy")}
              {text("minChange", "Min change")}
            </div>
          ) : null}
          <div className="grid grid-cols-2 items-end gap-3">
            {text("symbols", "Symbols", "comma-separated")}
            <div className="flex items-center gap-2 pb-2">
              <Switch id="rule-watchlist" checked={form.watchlist} onCheckedChange={(v) => set("watchlist", v)} />
              <Label htmlFor="rule-watchlist">Whole watchlist</Label>
            </div>
          </div>
          <div className="grid grid-cols-2 gap-3">
            <Field id="rule-severity" label="Severity">
              <Select value={form.severity} onValueChange={(v) => set("severity", v as Form["severity"])}>
                <SelectTrigger id="rule-severity" aria-label="Severity">
                  <SelectValue />
                </SelectTrigger>
                <SelectContent>
                  {(["info", "warning", "critical"] as const).map((s) => (
                    <SelectItem key={s} value={s}>
                      {s}
                    </SelectItem>
                  ))}
                </SelectContent>
              </Select>
            </Field>
            {text("cooldownSeconds", "Cooldown (s)")}
          </div>
          <div className="flex items-center gap-2">
            <Switch id="rule-sse" checked={form.sse} onCheckedChange={(v) => set("sse", v)} />
            <Label htmlFor="rule-sse">Dashboard live feed (SSE)</Label>
          </div>
          {text("webhookUrl", "Webhook URL (optional)", "public http(s) address; signed with the server secret")}
          {save.error ? <Alert>{save.error.message}</Alert> : null}
          <div className="flex flex-wrap items-end gap-2">
            <Button type="submit" disabled={save.isPending}>
              <Save /> {rule ? "Save rule" : "Create rule"}
            </Button>
            <div className="grid gap-1">
              <Label htmlFor="rule-backfill-start" className="text-xs">
                Backfill from
              </Label>
              <Input id="rule-backfill-start" type="date" className="w-40" value={backfillStart} onChange={(e) => setBackfillStart(e.target.value)} />
            </div>
            <Button
              type="button"
              variant="outline"
              disabled={preview.isPending}
              onClick={() => {
                const spec = validated();
                if (spec) preview.mutate(spec);
              }}
            >
              <Eye /> Preview
            </Button>
          </div>
          {preview.error ? <Alert>{preview.error.message}</Alert> : null}
          {preview.data ? (
            <div className="rounded-lg border border-border p-3 text-sm" data-testid="backfill-preview">
              <p className="font-medium">
                Would have fired {preview.data.count} time{preview.data.count === 1 ? "" : "s"} since {formatDate(preview.data.start)}
                {preview.data.truncated ? " (list truncated)" : ""}
              </p>
              <ul className="mt-2 max-h-56 overflow-y-auto text-xs">
                {preview.data.firings.slice(-50).reverse().map((f) => (
                  <li key={`${f.symbol}-${f.ts}`} className="py-0.5">
                    <span className="tabular-nums">{formatDate(f.ts)}</span> · {f.symbol} · {f.message}
                  </li>
                ))}
              </ul>
            </div>
          ) : null}
        </form>
      </CardContent>
    </Card>
  );
}
