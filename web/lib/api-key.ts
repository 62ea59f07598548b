// The dashboard's API key lives in the browser (localStorage), never on a server of ours.
const STORAGE_KEY = "regimelab.apiKey";
const listeners = new Set<() => void>();

export function readApiKey(): string | null {
  if (typeof window === "undefined") return null;
  try {
    return window.localStorage.getItem(STORAGE_KEY);
  } catch {
    return null;
  }
}

export function writeApiKey(key: string | null): void {
  const value = key?.trim() ?? "";
  if (value) window.localStorage.setItem(STORAGE_KEY, value);
  else window.localStorage.removeItem(STORAGE_KEY);
  for (const listener of listeners) listener();
}

export function subscribeApiKey(listener: () => void): () => void {
  listeners.add(listener);
  const onStorage = (event: StorageEvent) => {
    if (event.key === STORAGE_KEY) listener();
  };
  window.addEventListener("storage", onStorage);
  return () => {
    listeners.delete(listener);
    window.removeEventListener("storage", onStorage);
  };
}

/** The key in a URL fragment (`#key=rl_…`), as `regimelab up` prints it, or null. */
export function keyFromFragment(hash: string): string | null {
  const params = new URLSearchParams(hash.replace(/^#/, ""));
  const key = params.get("key")?.trim();
  return key ? key : null;
}

/**
 * Adopt the key `regimelab up` hands over in the URL fragment (never sent to a server),
 * then drop the fragment from the address bar and history.
 */
export function adoptFragmentKey(): boolean {
  const key = keyFromFragment(window.location.hash);
  if (!key) return false;
  writeApiKey(key);
  window.history.replaceState(null, "", window.location.pathname + window.location.search);
  return true;
}
