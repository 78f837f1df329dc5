// The whole journey in a phone-sized browser, by keyboard alone: every screen focused at its heading, scanned by
// axe and photographed.
import { expect, expectAccessible, onScreen, open, shot, test, token } from "./fixtures";

test("a new user gets a virtual card using only the keyboard", async ({ page, emulator, user }) => {
  // The card account is still being prepared after the identity check, so wait_for_account shows until the
  // emulator is told the account is ready.
  await emulator.configure({ safeDeploySeconds: 3600 });
  try {
    await open(page, token(user.sub));
    const phone = "+14155550123";

    await onScreen(page, "provide_email", "Get your virtual card");
    await expect(page.getByText("Step 1 of 6")).toBeVisible();
    await shot(page, "01-provide_email");
    await expectAccessible(page, "provide_email");
    await page.keyboard.press("Tab");
    await expect(page.getByLabel("Email address")).toBeFocused();
    await page.keyboard.type(user.email);
    await page.keyboard.press("Enter");

    await onScreen(page, "verify_email_code", "Check your email");
    await expect(page.getByText(/We sent a 6-digit code to e2/)).toBeVisible();
    await shot(page, "02-verify_email_code");
    await expectAccessible(page, "verify_email_code");
    await page.keyboard.press("Tab");
    await expect(page.getByLabel("Code from the email")).toBeFocused();
    await page.keyboard.type(await emulator.code(user.email));
    await page.keyboard.press("Enter");

    await onScreen(page, "complete_kyc", "Verify your identity");
    await shot(page, "03-complete_kyc");
    await expectAccessible(page, "complete_kyc");
    const link = page.getByRole("link", { name: /Open the identity check/ });
    await expect(link).toHaveAttribute("target", "_blank");
    await expect(link).toHaveAttribute("rel", /noopener/);
    await page.keyboard.press("Tab");
    await expect(link).toBeFocused();
    const popup = page.waitForEvent("popup");
    await page.keyboard.press("Enter");
    await (await popup).close();
    // The emulator approves the check a few seconds after the link was handed out; the page polls until then.

    await onScreen(page, "answer_source_of_funds", "About your money");
    await shot(page, "04-answer_source_of_funds");
    await expectAccessible(page, "answer_source_of_funds");
    const groups = page.getByRole("main").getByRole("group");
    const count = await groups.count();
    expect(count).toBeGreaterThan(0);
    for (let i = 0; i < count; i += 1) {
      await page.keyboard.press("Tab"); // into the group: its first option
      await page.keyboard.press("Space");
      await expect(groups.nth(i).getByRole("radio").first()).toBeChecked();
    }
    await page.keyboard.press("Tab");
    await expect(page.getByRole("button", { name: "Continue" })).toBeFocused();
    await page.keyboard.press("Enter");

    await onScreen(page, "provide_phone", "Add your phone number");
    await shot(page, "05-provide_phone");
    await expectAccessible(page, "provide_phone");
    await page.keyboard.press("Tab");
    await expect(page.getByLabel("Mobile phone number")).toBeFocused();
    await page.keyboard.type(phone);
    await page.keyboard.press("Enter");

    await onScreen(page, "verify_phone_code", "Check your phone");
    await shot(page, "06-verify_phone_code");
    await expectAccessible(page, "verify_phone_code");
    await page.keyboard.press("Tab");
    await page.keyboard.type(await emulator.code(phone));
    await page.keyboard.press("Enter");

    await onScreen(page, "wait_for_account", "We are preparing your card account");
    await shot(page, "07-wait_for_account");
    await expectAccessible(page, "wait_for_account");
    await emulator.configure({ safeDeploySeconds: 0 });

    await onScreen(page, "create_card", "Create your virtual card");
    await shot(page, "08-create_card");
    await expectAccessible(page, "create_card");
    await page.keyboard.press("Tab");
    await expect(page.getByRole("button", { name: "Create my card" })).toBeFocused();
    await page.keyboard.press("Enter");

    await onScreen(page, "done", "Your card is ready");
    await expect(page.getByText(/Your virtual card ending in \d{4} is active\./)).toBeVisible();
    await expect(page.getByText("Step 6 of 6")).toBeVisible();
    await shot(page, "09-done");
    await expectAccessible(page, "done");

    // A reload resumes from the service's state alone.
    await page.reload();
    await onScreen(page, "done", "Your card is ready");
  } finally {
    await emulator.configure({ safeDeploySeconds: 0 });
  }
});
