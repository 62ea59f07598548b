"use client";

import { CheckCircle2 } from "lucide-react";
import { useState, type FormEvent } from "react";
import { toast } from "sonner";
import { useApiKey } from "@/components/api-key-provider";
import { Alert } from "@/components/ui/alert";
import { Button } from "@/components/ui/button";
import { Card, CardContent, CardDescription, CardHeader, CardTitle } from "@/components/ui/card";
import { Input } from "@/components/ui/input";
import { Label } from "@/components/ui/label";
import { api, ApiError, unwrap } from "@/lib/api/client";
import { writeApiKey } from "@/lib/api-key";

/** Enter, check and forget the API key the dashboard sends (`Authorization: Bearer`). */
export function ApiKeyForm() {
  const { apiKey } = useApiKey();
  const [draft, setDraft] = useState("");
  const [error, setError] = useState<string | null>(null);
  const [checking, setChecking] = useState(false);

  const save = async (event: FormEvent) => {
    event.preventDefault();
    const key = draft.trim();
    if (!/^rl_[A-Za-z0-9]+_[A-Za-z0-9_-]+$/.test(key)) {
      setError("That is not a RegimeLab key (they look like rl_xxxxxxxx_…).");
      return;
    }
    setChecking(true);
    setError(null);
    const previous = apiKey;
    writeApiKey(key);
    try {
      unwrap(await api.GET("/api/v1/instruments", { params: { query: { limit: 1 } } }));
      toast.success("API key saved");
      setDraft("");
    } catch (caught) {
      writeApiKey(previous);
      setError(caught instanceof ApiError ? caught.message : `Could not reach the API: ${(caught as Error).message}`);
    } finally {
      setChecking(false);
    }
  };

  return (
    <Card>
      <CardHeader>
        <div>
          <CardTitle>API key</CardTitle>
          <CardDescription>
            Stored in this browser&apos;s localStorage and sent as <code>Authorization: Bearer</code>. Create one with{" "}
            <code>uv run regimelab api-keys create --name me --scopes read,write,admin</code>, or open the
            dashboard URL <code>regimelab up</code> prints (its <code>#key=</code> part sets the key here).
          </CardDescription>
        </div>
      </CardHeader>
      <CardContent className="grid gap-3">
        {apiKey ? (
          <p className="flex items-center gap-2 text-sm" data-testid="api-key-status">
            <CheckCircle2 className="size-4 text-emerald-600" aria-hidden />
            Using key <code>{apiKey.split("_").slice(0, 2).join("_")}_…</code>
          </p>
        ) : (
          <Alert tone="info">No key is set: the pages cannot load data until you enter one.</Alert>
        )}
        <form className="flex flex-wrap items-end gap-2" onSubmit={save}>
          <div className="grid min-w-64 flex-1 gap-1">
            <Label htmlFor="api-key">New key</Label>
            <Input
              id="api-key"
              type="password"
              autoComplete="off"
              placeholder="rl_…"
              value={draft}
              aria-invalid={error ? true : undefined}
              onChange={(e) => setDraft(e.target.value)}
            />
          </div>
          <Button type="submit" disabled={checking || !draft.trim()}>
            {checking ? "Checking…" : "Save key"}
          </Button>
          {apiKey ? (
            <Button type="button" variant="outline" onClick={() => writeApiKey(null)}>
              Forget key
            </Button>
          ) : null}
        </form>
        {error ? <Alert>{error}</Alert> : null}
      </CardContent>
    </Card>
  );
}
