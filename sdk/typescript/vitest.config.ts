import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    // The flow tests start real processes and follow the server's pollAfterSeconds (5 s).
    testTimeout: 60_000,
    hookTimeout: 120_000,
  },
});
