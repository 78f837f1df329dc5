// What the tests share: tokens signed for the stack, the emulator's control plane, screenshots and the axe scan.
import { test as base, expect, type Page } from "@playwright/test";
import { createHmac, randomUUID } from "node:crypto";
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const artifacts = join(dirname(fileURLToPath(import.meta.url)), "..", "artifacts");
const axeSource = readFileSync(createRequire(import.meta.url).resolve("axe-core/axe.min.js"), "utf8");

function env(name: string): string {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is unset: the global setup did not run`);
  return value;
}

/** An HS256 token the stack accepts (its secret came from the global setup); `expired` makes one an hour old. */
export function token(sub: string, { expired = false } = {}): string {
  const b64 = (value: object): string => Buffer.from(JSON.stringify(value)).toString("base64url");
  const now = Math.floor(Date.now() / 1000);
  const claims = expired ? { sub, iat: now - 7200, exp: now - 3600 } : { sub, iat: now, exp: now + 3600 };
  const unsigned = `${b64({ alg: "HS256", typ: "JWT" })}.${b64(claims)}`;
  return `${unsigned}.${createHmac("sha256", env("E2E_JWT_SECRET")).update(unsigned).digest("base64url")}`;
}

export class Emulator {
  readonly url = env("E2E_EMULATOR_URL");

  private async send(method: string, path: string, body?: unknown): Promise<unknown> {
    const response = await fetch(`${this.url}/_emulator${path}`, {
      method,
      headers: body === undefined ? {} : { "Content-Type": "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    if (!response.ok) throw new Error(`${method} ${path}: ${response.status} ${await response.text()}`);
    return response.status === 204 ? null : response.json();
  }

  /** The codes sent to an email address or phone number, oldest first. */
  async codes(to: string): Promise<string[]> {
    const { messages } = (await this.send("GET", `/outbox?to=${encodeURIComponent(to)}`)) as { messages: { code: string }[] };
    return messages.map((m) => m.code);
  }

  /** The newest code sent to `to`, waiting for it to arrive. */
  async code(to: string, count = 1): Promise<string> {
    let codes: string[] = [];
    await expect.poll(async () => (codes = await this.codes(to)).length, { message: `codes sent to ${to}` }).toBeGreaterThanOrEqual(count);
    return codes[codes.length - 1] as string;
  }

  kyc(email: string, status: string): Promise<unknown> {
    return this.send("POST", `/customers/${encodeURIComponent(email)}/kyc`, { status });
  }

  fault(spec: Record<string, unknown>): Promise<unknown> {
    return this.send("POST", "/faults", spec);
  }

  clearFaults(): Promise<unknown> {
    return this.send("DELETE", "/faults");
  }

  advanceClock(seconds: number): Promise<unknown> {
    return this.send("POST", "/clock", { advanceSeconds: seconds });
  }

  configure(changes: Record<string, unknown>): Promise<unknown> {
    return this.send("PUT", "/config", changes);
  }
}

export interface User {
  sub: string;
  email: string;
}

export const test = base.extend<{ emulator: Emulator; user: User }>({
  emulator: async ({}, use) => {
    const emulator = new Emulator();
    await use(emulator);
    await emulator.clearFaults();
  },
  // A user of their own per test: the stack's state is shared, users are not.
  user: async ({}, use) => {
    const id = randomUUID().slice(0, 8);
    await use({ sub: `e2e-${id}`, email: `e2e-${id}@example.com` });
  },
  page: async ({ page }, use) => {
    // Nothing leaves the machine: the identity check's page (another host) is answered here with a stand-in.
    await page.context().route(/^https?:\/\/(?!127\.0\.0\.1[:/])/, (route) =>
      route.fulfill({ contentType: "text/html", body: "<!doctype html><title>Identity check</title><h1>Identity check (stand-in)</h1>" }),
    );
    await use(page);
  },
});

export { expect };

/** Open the app as `user` (or with any token). */
export async function open(page: Page, tokenValue: string): Promise<void> {
  await page.goto(`${env("E2E_BASE_URL")}/demo/?token=${encodeURIComponent(tokenValue)}`);
}

/** The screen on the page is `type`, focus sits on its heading, and it fits the phone's width. */
export async function onScreen(page: Page, type: string, heading: string | RegExp): Promise<void> {
  await expect(page.locator(`section[data-screen="${type}"]`)).toBeVisible({ timeout: 20_000 });
  const h1 = page.getByRole("heading", { level: 1, name: heading });
  await expect(h1).toBeVisible();
  await expect(h1).toBeFocused();
  // Phone-sized: nothing is wider than the screen.
  expect(await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth)).toBeLessThanOrEqual(0);
}

/** A screenshot kept as a test artifact (artifacts/NAME.png, not committed). */
export async function shot(page: Page, name: string): Promise<void> {
  await page.screenshot({ path: join(artifacts, `${name}.png`), fullPage: true });
}

/** axe-core on the page as it is: no serious or critical violation. */
export async function expectAccessible(page: Page, where: string): Promise<void> {
  // Evaluated over the DevTools protocol, so the page's Content-Security-Policy stays on.
  await page.evaluate(axeSource);
  const violations = (await page.evaluate(async () => {
    const axe = (window as unknown as { axe: { run: (ctx: Document, opts: object) => Promise<{ violations: unknown[] }> } }).axe;
    const result = await axe.run(document, { resultTypes: ["violations"] });
    return result.violations;
  })) as { id: string; impact: string | null; help: string; nodes: { target: string[] }[] }[];
  const bad = violations
    .filter((v) => v.impact === "serious" || v.impact === "critical")
    .map((v) => `${v.id} (${v.impact}): ${v.help} at ${v.nodes.map((n) => n.target.join(" ")).join(", ")}`);
  expect(bad, `axe on ${where}`).toEqual([]);
}
