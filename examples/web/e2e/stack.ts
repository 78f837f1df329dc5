// Global setup: a throwaway redis-server (or the in-process store without one) and `python -m service dev` on free
// ports, serving the built app at /demo/; the URLs and the signing secret reach the tests through the environment.
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, mkdirSync, openSync } from "node:fs";
import { createServer } from "node:net";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, "../../..");
const web = resolve(here, "..");

function freePort(): Promise<number> {
  return new Promise((ok, fail) => {
    const server = createServer();
    server.unref();
    server.on("error", fail);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      server.close(() => (typeof address === "object" && address ? ok(address.port) : fail(new Error("no port"))));
    });
  });
}

async function waitFor(url: string, child: ChildProcess, seconds: number): Promise<void> {
  const deadline = Date.now() + seconds * 1000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`${url}: the process exited with ${child.exitCode} (see artifacts/stack.log)`);
    try {
      if ((await fetch(url)).ok) return;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${url} did not answer within ${seconds} s (see artifacts/stack.log)`);
}

function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null) return Promise.resolve();
  return new Promise((done) => {
    const kill = setTimeout(() => child.kill("SIGKILL"), 5000);
    child.once("exit", () => {
      clearTimeout(kill);
      done();
    });
    child.kill("SIGTERM");
  });
}

export default async function globalSetup(): Promise<() => Promise<void>> {
  if (!existsSync(join(web, "dist", "index.html"))) throw new Error("the app is not built: run `npm run build` first");
  const python = process.env.E2E_PYTHON ?? join(root, ".venv", "bin", "python");
  mkdirSync(join(web, "artifacts"), { recursive: true });
  const log = openSync(join(web, "artifacts", "stack.log"), "w");
  const children: ChildProcess[] = [];

  let redisUrl = "memory://";
  if (spawnSync("redis-server", ["--version"]).status === 0) {
    const port = await freePort();
    const redis = spawn("redis-server", ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"], {
      stdio: ["ignore", log, log],
    });
    children.push(redis);
    redisUrl = `redis://127.0.0.1:${port}/0`;
  }

  const port = await freePort();
  const emulatorPort = await freePort();
  const secret = randomBytes(24).toString("hex");
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    REDIS_URL: redisUrl,
    AUTH_JWT_SECRET: secret,
    // A short cooldown, so "resend in N s" runs out within a test.
    EMAIL_RESEND_COOLDOWN_SECONDS: "3",
    LOG_FORMAT: "console",
  };
  delete env.AUTH_JWKS_URL;
  const service = spawn(python, ["-m", "service", "dev", "--port", String(port), "--emulator-port", String(emulatorPort)], {
    cwd: root,
    stdio: ["ignore", log, log],
    env,
  });
  children.push(service);
  const base = `http://127.0.0.1:${port}`;
  const emulator = `http://127.0.0.1:${emulatorPort}`;
  try {
    await waitFor(`${base}/livez`, service, 30);
    await waitFor(`${emulator}/_emulator/faults`, service, 10);
    const page = await fetch(`${base}/demo/`);
    if (!page.ok) throw new Error(`${base}/demo/ answered ${page.status}: is the app built?`);
  } catch (error) {
    await Promise.all(children.reverse().map(stop));
    throw error;
  }
  process.env.E2E_BASE_URL = base;
  process.env.E2E_EMULATOR_URL = emulator;
  process.env.E2E_JWT_SECRET = secret;
  return async () => {
    await Promise.all(children.reverse().map(stop));
  };
}
