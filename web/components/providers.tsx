"use client";

import { QueryClient, QueryClientProvider } from "@tanstack/react-query";
import { useState, type ReactNode } from "react";
import { Toaster } from "sonner";
import { ApiError } from "@/lib/api/client";
import { ApiKeyProvider } from "@/components/api-key-provider";
import { ThemeProvider, useTheme } from "@/components/theme";

function makeQueryClient(): QueryClient {
  return new QueryClient({
    defaultOptions: {
      queries: {
        staleTime: 30_000,
        refetchOnWindowFocus: false,
        // problems the user must fix (bad key, bad input, missing data) are not retried
        retry: (failures, error) =>
          !(error instanceof ApiError && error.status >= 400 && error.status < 500) && failures < 2,
      },
    },
  });
}

function ThemedToaster() {
  const { dark } = useTheme();
  return <Toaster theme={dark ? "dark" : "light"} richColors closeButton position="bottom-right" />;
}

export function Providers({ children }: { children: ReactNode }) {
  const [client] = useState(makeQueryClient);
  return (
    <ThemeProvider>
      <QueryClientProvider client={client}>
        <ApiKeyProvider>{children}</ApiKeyProvider>
        <ThemedToaster />
      </QueryClientProvider>
    </ThemeProvider>
  );
}
