export type Theme = "light" | "dark" | "system";
export const THEME_STORAGE_KEY = "regimelab.theme";

/** Runs before hydration (inline in <head>) so the first paint has the right theme. */
export const THEME_BOOTSTRAP = `(function(){try{var t=localStorage.getItem("${THEME_STORAGE_KEY}")||"system";var d=t==="dark"||(t==="system"&&matchMedia("(prefers-color-scheme: dark)").matches);document.documentElement.classList.toggle("dark",d);}catch(e){}})();`;
