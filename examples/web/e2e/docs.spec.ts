// The API docs page renders in a browser with the network cut off: everything it loads comes from the service.
import { expect, test } from "@playwright/test";
import { shot } from "./fixtures";

test("the API docs render with every other host unreachable", async ({ page }) => {
  const base = process.env.E2E_BASE_URL;
  if (!base) throw new Error("E2E_BASE_URL is unset: the global setup did not run");
  const elsewhere: string[] = [];
  // The network is cut: any request to another host fails, and is noted.
  await page.context().route(/^https?:\/\/(?!127\.0\.0\.1[:/])/, (route) => {
    elsewhere.push(route.request().url());
    return route.abort("internetdisconnected");
  });
  await page.goto(`${base}/schema/swagger`);
  // Swagger UI built the page from the served document: its title and an operation of ours are shown.
  await expect(page.locator(".swagger-ui .info .title")).toContainText("Card onboarding API", { timeout: 20_000 });
  await expect(page.getByText("/v1/card-onboarding/email-verification").first()).toBeVisible();
  await shot(page, "api-docs");
  expect(elsewhere).toEqual([]);
});
