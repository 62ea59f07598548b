"use client";

import { createContext, useCallback, useContext, useEffect, useState, type ReactNode } from "react";

import { THEME_STORAGE_KEY as STORAGE_KEY, type Theme } from "@/lib/theme";

export type { Theme };

const ThemeContext = createContext<{ theme: Theme; setTheme: (theme: Theme) => void; dark: boolean }>({
  theme: "system",
  setTheme: () => {},
  dark: false,
});

function prefersDark(): boolean {
  return window.matchMedia("(prefers-color-scheme: dark)").matches;
}

export function ThemeProvider({ children }: { children: ReactNode }) {
  const [theme, setThemeState] = useState<Theme>("system");
  const [dark, setDark] = useState(false);

  useEffect(() => {
    const stored = window.localStorage.getItem(STORAGE_KEY);
    // eslint-disable-next-line react-hooks/set-state-in-effect -- sync with storage after hydration
    if (stored === "light" || stored === "dark") setThemeState(stored);
  }, []);

  useEffect(() => {
    const apply = () => {
      const isDark = theme === "dark" || (theme === "system" && prefersDark());
      document.documentElement.classList.toggle("dark", isDark);
      setDark(isDark);
    };
    apply();
    const media = window.matchMedia("(prefers-color-scheme: dark)");
    media.addEventListener("change", apply);
    return () => media.removeEventListener("change", apply);
  }, [theme]);

  const setTheme = useCallback((next: Theme) => {
    window.localStorage.setItem(STORAGE_KEY, next);
    setThemeState(next);
  }, []);

  return <ThemeContext.Provider value={{ theme, setTheme, dark }}>{children}</ThemeContext.Provider>;
}

export function useTheme() {
  return useContext(ThemeContext);
}
