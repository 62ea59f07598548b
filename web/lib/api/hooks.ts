"use client";

import { useQuery, type QueryKey, type UseQueryOptions } from "@tanstack/react-query";
import { useApiKey } from "@/components/api-key-provider";
import { api, unwrap } from "@/lib/api/client";
import { modelsWithRuns } from "@/lib/regimes";

/** useQuery for API reads: waits for an API key, and errors are ApiErrors with problem details. */
export function useApiQuery<T>(
  queryKey: QueryKey,
  queryFn: () => Promise<T>,
  options: Omit<UseQueryOptions<T, Error, T, QueryKey>, "queryKey" | "queryFn"> = {},
) {
  const { apiKey, ready } = useApiKey();
  return useQuery<T, Error, T, QueryKey>({
    queryKey,
    queryFn,
    ...options,
    enabled: ready && apiKey !== null && (options.enabled ?? true),
  });
}

/** Models with a succeeded regime run, newest first (the model selectors' choices). */
export function useRegimeModels() {
  return useApiQuery(["regime-runs"], async () =>
    modelsWithRuns(unwrap(await api.GET("/api/v1/regimes/runs", { params: { query: { limit: 1000 } } })).items),
  );
}
