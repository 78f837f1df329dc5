// The screens off the straight path: the service busy, an expired sign-in, a refused email, a check under review,
// and a check that failed.
import { expect, expectAccessible, onScreen, open, shot, test, token, type Emulator, type User } from "./fixtures";
import type { Page } from "@playwright/test";

async function toIdentityCheck(page: Page, emulator: Emulator, user: User): Promise<void> {
  await open(page, token(user.sub));
  await onScreen(page, "provide_email", "Get your virtual card");
  await page.getByLabel("Email address").fill(user.email);
  await page.getByRole("button", { name: "Send me a code" }).click();
  await onScreen(page, "verify_email_code", "Check your email");
  await page.getByLabel("Code from the email").fill(await emulator.code(user.email));
  await page.getByRole("button", { name: "Confirm" }).click();
  await onScreen(page, "complete_kyc", "Verify your identity");
}

test("an upstream outage shows retry_later with a countdown, and the same call goes through by itself", async ({ page, emulator, user }) => {
  await emulator.fault({ path: "/yativo-card/customers/onboard", method: "POST", status: 503, headers: { "Retry-After": "3" }, body: { success: false }, times: 1 });
  await open(page, token(user.sub));
  await onScreen(page, "provide_email", "Get your virtual card");
  await page.getByLabel("Email address").fill(user.email);
  await page.getByRole("button", { name: "Send me a code" }).click();

  const banner = page.locator('[data-banner="retry_later"]');
  await expect(banner).toBeVisible();
  await expect(banner.getByRole("heading", { name: "The service is busy" })).toBeFocused();
  await expect(banner).toContainText(/Trying again in \d s\./);
  await shot(page, "13-retry_later");
  await expectAccessible(page, "retry_later");

  // Nobody touches anything: the countdown runs out and the start is sent again.
  await onScreen(page, "verify_email_code", "Check your email");
  await expect(banner).toBeHidden();
  expect(await emulator.codes(user.email)).toHaveLength(1);
});

test("an expired token shows sign_in, and a fresh one carries on", async ({ page, user }) => {
  await open(page, token(user.sub, { expired: true }));
  await onScreen(page, "sign_in", "Sign in again");
  await shot(page, "14-sign_in");
  await expectAccessible(page, "sign_in");
  await page.getByLabel("Access token (development)").fill(token(user.sub));
  await page.getByRole("button", { name: "Sign in" }).click();
  await onScreen(page, "provide_email", "Get your virtual card");
});

test("the card issuer's own email is refused with use_different_email, and another address works", async ({ page, user }) => {
  await open(page, token(user.sub));
  await onScreen(page, "provide_email", "Get your virtual card");
  await page.getByLabel("Email address").fill("issuer@emulator.yativo.test");
  await page.getByRole("button", { name: "Send me a code" }).click();
  await onScreen(page, "use_different_email", "Use a different email");
  await expect(page.getByText(/belongs to the card issuer/)).toBeVisible();
  await shot(page, "15-use_different_email");
  await expectAccessible(page, "use_different_email");
  await page.getByLabel("Email address").fill(user.email);
  await page.getByRole("button", { name: "Send me a code" }).click();
  await onScreen(page, "verify_email_code", "Check your email");
});

test.describe("identity checks decided by hand", () => {
  test.beforeEach(async ({ emulator }) => {
    await emulator.configure({ kycAutoApproveSeconds: null });
  });
  test.afterEach(async ({ emulator }) => {
    await emulator.configure({ kycAutoApproveSeconds: 3 });
  });

  test("a check under review shows wait_for_kyc, which follows the state until approval", async ({ page, emulator, user }) => {
    await toIdentityCheck(page, emulator, user);
    await emulator.kyc(user.email, "in_progress");
    const popup = page.waitForEvent("popup");
    await page.getByRole("link", { name: /Open the identity check/ }).click();
    await (await popup).close();
    await onScreen(page, "wait_for_kyc", "We are checking your identity");
    await shot(page, "16-wait_for_kyc");
    await expectAccessible(page, "wait_for_kyc");
    await emulator.kyc(user.email, "approved");
    await onScreen(page, "answer_source_of_funds", "About your money");
  });

  test("a rejected check shows contact_support", async ({ page, emulator, user }) => {
    await toIdentityCheck(page, emulator, user);
    await emulator.kyc(user.email, "rejected");
    const popup = page.waitForEvent("popup");
    await page.getByRole("link", { name: /Open the identity check/ }).click();
    await (await popup).close();
    await onScreen(page, "contact_support", "Please contact support");
    await expect(page.getByText("We could not verify your identity.")).toBeVisible();
    await shot(page, "17-contact_support");
    await expectAccessible(page, "contact_support");
  });
});
