// Email codes: a wrong one then the right one, field errors beside their fields, and a new code after the cooldown.
import { expect, expectAccessible, onScreen, open, shot, test, token } from "./fixtures";

test("a wrong code shows the service's message at the code field, and the right one moves on", async ({ page, emulator, user }) => {
  await open(page, token(user.sub));
  await onScreen(page, "provide_email", "Get your virtual card");
  await page.getByLabel("Email address").fill(user.email);
  await page.getByRole("button", { name: "Send me a code" }).click();
  await onScreen(page, "verify_email_code", "Check your email");

  const right = await emulator.code(user.email);
  const code = page.getByLabel("Code from the email");
  await code.fill(right === "000000" ? "111111" : "000000");
  await page.getByRole("button", { name: "Confirm" }).click();
  await expect(code).toHaveAccessibleDescription(/Code is not valid/);
  await expect(code).toHaveAttribute("aria-invalid", "true");
  await expect(code).toBeFocused();
  await shot(page, "10-verify_email_code-wrong-code");
  await expectAccessible(page, "a wrong code");

  await code.fill(right);
  await page.getByRole("button", { name: "Confirm" }).click();
  await onScreen(page, "complete_kyc", "Verify your identity");
});

test("fix_input puts each field error next to its field", async ({ page, emulator, user }) => {
  await open(page, token(user.sub));
  await onScreen(page, "provide_email", "Get your virtual card");
  const email = page.getByLabel("Email address");
  await email.fill("not an email");
  await page.getByRole("button", { name: "Send me a code" }).click();
  await expect(email).toHaveAccessibleDescription(/^Error: .*email address/);
  await expect(email).toBeFocused();
  await expect(page.locator("section[data-screen]")).toHaveAttribute("data-screen", "provide_email");
  await shot(page, "11-fix_input-email");
  await expectAccessible(page, "fix_input on the email");

  await email.fill(user.email);
  await page.getByRole("button", { name: "Send me a code" }).click();
  await onScreen(page, "verify_email_code", "Check your email");
  const code = page.getByLabel("Code from the email");
  await code.fill("123");
  await page.getByRole("button", { name: "Confirm" }).click();
  await expect(code).toHaveAttribute("aria-invalid", "true");
  await expect(code).toHaveAccessibleDescription(/6/);
  await code.fill(await emulator.code(user.email));
  await page.getByRole("button", { name: "Confirm" }).click();
  await onScreen(page, "complete_kyc", "Verify your identity");
});

// The e2e stack sets EMAIL_RESEND_COOLDOWN_SECONDS=3, so resendAvailableAt comes within the test.
test("a new code can be asked for once the cooldown has run out, and that code works", async ({ page, emulator, user }) => {
  await open(page, token(user.sub));
  await onScreen(page, "provide_email", "Get your virtual card");
  await page.getByLabel("Email address").fill(user.email);
  await page.getByRole("button", { name: "Send me a code" }).click();
  await onScreen(page, "verify_email_code", "Check your email");

  const resend = page.getByRole("button", { name: "Send a new code" });
  await expect(page.getByText(/You can ask for a new code in \d+ s\./)).toBeVisible();
  await expect(resend).toBeDisabled();
  await shot(page, "12-verify_email_code-resend-countdown");
  await expect(resend).toBeEnabled({ timeout: 10_000 });
  await expect(page.getByText("You can ask for a new code now.")).toBeVisible();
  // The emulator sends a new code on a repeated start only once the old one is dead: move its clock past the
  // code's life (the service's own clock, and so its cooldown, is untouched).
  await emulator.advanceClock(601);
  await resend.click();

  await onScreen(page, "verify_email_code", "Check your email");
  await expect(page.getByRole("status").filter({ hasText: "We sent you a new code." })).toBeVisible();
  await expect(page.getByText(/You can ask for a new code in \d+ s\./)).toBeVisible();
  const fresh = await emulator.code(user.email, 2);
  await page.getByLabel("Code from the email").fill(fresh);
  await page.getByRole("button", { name: "Confirm" }).click();
  await onScreen(page, "complete_kyc", "Verify your identity");
});
