"use client";

import { useEffect, useRef, useState } from "react";
import { useApiKey } from "@/components/api-key-provider";
import { API_BASE_URL, authHeaders, type Schemas } from "@/lib/api/client";
import { EventStreamParser } from "@/lib/sse";

export type LiveEvent = Schemas["AlertEvent"] & { test?: boolean; kind: string };
export type StreamStatus = "connecting" | "live" | "reconnecting" | "off";

const RETRY_MS = 3000;

/**
 * The live alert feed (GET /api/v1/alerts/stream). EventSource cannot send an
 * Authorization header, so this reads the stream with fetch and parses it.
 */
export function useAlertStream(onEvent: (event: LiveEvent) => void): StreamStatus {
  const { apiKey, ready } = useApiKey();
  const [status, setStatus] = useState<StreamStatus>("connecting");
  const handler = useRef(onEvent);
  useEffect(() => {
    handler.current = onEvent;
  }, [onEvent]);

  useEffect(() => {
    if (!ready || !apiKey) return;
    const abort = new AbortController();
    let timer: ReturnType<typeof setTimeout> | undefined;

    const connect = async () => {
      try {
        const response = await fetch(`${API_BASE_URL}/api/v1/alerts/stream`, {
          headers: { Accept: "text/event-stream", ...authHeaders() },
          signal: abort.signal,
          cache: "no-store",
        });
        if (!response.ok || !response.body) throw new Error(`HTTP ${response.status}`);
        setStatus("live");
        const parser = new EventStreamParser();
        const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          for (const event of parser.push(value)) {
            try {
              handler.current({ ...(JSON.parse(event.data) as Schemas["AlertEvent"]), kind: event.event });
            } catch {
              // a malformed event is skipped, the stream goes on
            }
          }
        }
      } catch {
        if (abort.signal.aborted) return;
      }
      if (abort.signal.aborted) return;
      setStatus("reconnecting");
      timer = setTimeout(() => void connect(), RETRY_MS);
    };
    void connect();
    return () => {
      abort.abort();
      if (timer) clearTimeout(timer);
    };
  }, [apiKey, ready]);

  return ready && !apiKey ? "off" : status;
}
