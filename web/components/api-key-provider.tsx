"use client";

import { useQueryClient } from "@tanstack/react-query";
import { createContext, useContext, useEffect, useRef, useState, useSyncExternalStore, type ReactNode } from "react";
import { adoptFragmentKey, readApiKey, subscribeApiKey } from "@/lib/api-key";

interface ApiKeyState {
  /** The key in use, or null when none is set. */
  apiKey: string | null;
  /** False until the stored key (or the one in the URL from `regimelab up`) has been read. */
  ready: boolean;
}

const ApiKeyContext = createContext<ApiKeyState>({ apiKey: null, ready: false });

export function ApiKeyProvider({ children }: { children: ReactNode }) {
  const apiKey = useSyncExternalStore(subscribeApiKey, readApiKey, () => null);
  const [ready, setReady] = useState(false);
  const queryClient = useQueryClient();

  useEffect(() => {
    adoptFragmentKey();
    // eslint-disable-next-line react-hooks/set-state-in-effect -- the stored key is only readable after hydration
    setReady(true);
  }, []);

  const previousKey = useRef(apiKey);
  useEffect(() => {
    // a changed key may see different data (or none): start over
    if (previousKey.current === apiKey) return;
    previousKey.current = apiKey;
    void queryClient.invalidateQueries();
  }, [apiKey, queryClient]);

  return <ApiKeyContext.Provider value={{ apiKey, ready }}>{children}</ApiKeyContext.Provider>;
}

export function useApiKey(): ApiKeyState {
  return useContext(ApiKeyContext);
}
