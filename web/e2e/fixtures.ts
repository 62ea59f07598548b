import { expect, test as base, type Page } from "@playwright/test";
import path from "node:path";

export const API_KEY = process.env.REGIMELAB_E2E_API_KEY ?? "";
export const SCREENSHOTS = path.join(__dirname, "..", "test-results", "screenshots");

/** A page signed in with the e2e key that fails its test on any console error. */
export const test = base.extend<{ consoleErrors: string[] }>({
  consoleErrors: async ({ page }, provide) => {
    const errors: string[] = [];
    page.on("console", (message) => {
      if (message.type() === "error") errors.push(message.text());
    });
    page.on("pageerror", (error) => errors.push(`${error.name}: ${error.message}`));
    await provide(errors);
    expect(errors, "console errors on the page").toEqual([]);
  },
  page: async ({ page }, provide) => {
    await page.addInitScript((key) => {
      try {
        if (key && !window.localStorage.getItem("regimelab.apiKey")) window.localStorage.setItem("regimelab.apiKey", key);
      } catch {
        // error pages (about:blank, chrome-error://) have no storage
      }
    }, API_KEY);
    await provide(page);
  },
});

export { expect };

export async function screenshot(page: Page, name: string): Promise<void> {
  const file = path.join(SCREENSHOTS, `${name}.png`);
  await page.screenshot({ path: file, fullPage: true });
  console.log(`screenshot: ${file}`);
}

/** Pick an option of a Radix select by its trigger's accessible name. */
export async function choose(page: Page, trigger: string, option: string): Promise<void> {
  await page.getByRole("combobox", { name: trigger }).click();
  await page.getByRole("option", { name: option, exact: true }).click();
}
