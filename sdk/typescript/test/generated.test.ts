// The committed types are what openapi-typescript makes of the committed document: regenerate with `npm run generate`.
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

import { expect, it } from "vitest";

const here = fileURLToPath(new URL("..", import.meta.url));

it("regenerating the types from openapi/openapi.json changes nothing", () => {
  const dir = mkdtempSync(join(tmpdir(), "sdk-generate-"));
  try {
    const out = join(dir, "openapi.ts");
    const bin = join(here, "node_modules", ".bin", "openapi-typescript");
    execFileSync(bin, [join(here, "..", "..", "openapi", "openapi.json"), "--output", out], { stdio: "pipe" });
    const committed = readFileSync(join(here, "src", "generated", "openapi.ts"), "utf8");
    expect(readFileSync(out, "utf8"), "src/generated/openapi.ts drifted from openapi/: run `npm run generate`").toBe(committed);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
