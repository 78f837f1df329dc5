// Composes three of the e2e screenshots (artifacts/, from `make e2e`) side by side into screenshot.png for the README.
import { chromium } from "@playwright/test";
import { readFileSync } from "node:fs";

const screens = ["12-verify_email_code-resend-countdown", "03-complete_kyc", "09-done"];
const src = (name) => `data:image/png;base64,${readFileSync(new URL(`../artifacts/${name}.png`, import.meta.url)).toString("base64")}`;
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM_PATH ?? "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
const page = await browser.newPage({ viewport: { width: 1230, height: 600 }, deviceScaleFactor: 1 });
await page.setContent(`<body style="margin:0;padding:15px;background:#d5dae0;display:flex;gap:15px;align-items:flex-start">
  ${screens.map((s) => `<img src="${src(s)}" style="width:390px;border-radius:12px;box-shadow:0 2px 8px rgb(0 0 0/.25)">`).join("")}
</body>`);
await page.screenshot({ path: new URL("../screenshot.png", import.meta.url).pathname, fullPage: true });
await browser.close();
console.log("wrote screenshot.png");
