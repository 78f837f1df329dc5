// The real stack for the flow tests: a throwaway redis-server, the bundled Yativo emulator and
// `python -m service serve`, each a process on a free loopback port, stopped when the tests end.
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { existsSync, mkdtempSync, openSync, readFileSync, rmSync } from "node:fs";
import { createServer, connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

import { createOnboardingClient, type ClientOptions, type OnboardingClient } from "../src/index.js";

export const ROOT = fileURLToPath(new URL("../../..", import.meta.url));
const PYTHON = process.env.PYTHON ?? (existsSync(join(ROOT, ".venv", "bin", "python")) ? join(ROOT, ".venv", "bin", "python") : "python3");
const JWT_SECRET = "sdk-test-secret-for-hs256-tokens-0000000";

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      server.close(() => (typeof address === "object" && address ? resolve(address.port) : reject(new Error("no port"))));
    });
  });
}

// Generous: on a loaded machine a first start also compiles every module's bytecode.
async function listening(port: number, child: ChildProcess, log: string, timeoutMs = 90_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`exited early (${child.exitCode}):\n${readFileSync(log, "utf8")}`);
    const up = await new Promise<boolean>((resolve) => {
      const socket = connect(port, "127.0.0.1");
      socket.once("connect", () => (socket.destroy(), resolve(true)));
      socket.once("error", () => resolve(false));
    });
    if (up) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`${child.spawnargs.join(" ")}: nothing listened on ${port} within ${timeoutMs} ms:\n${readFileSync(log, "utf8")}`);
}

export class Stack {
  private readonly children: ChildProcess[] = [];
  private readonly logs = mkdtempSync(join(tmpdir(), "sdk-stack-"));
  service = "";
  emulator = "";

  private async start(name: string, command: string, args: string[], port: number, env: Record<string, string> = {}) {
    const log = join(this.logs, `${name}.log`);
    const out = openSync(log, "w");
    const child = spawn(command, args, { cwd: ROOT, env: { ...process.env, ...env }, stdio: ["ignore", out, out] });
    this.children.push(child);
    await listening(port, child, log);
  }

  async up(): Promise<this> {
    const [redis, emulator, service] = await Promise.all([freePort(), freePort(), freePort()]);
    this.emulator = `http://127.0.0.1:${emulator}`;
    this.service = `http://127.0.0.1:${service}`;
    // Side by side: the service reaches Redis and the emulator only when asked, so none waits for another.
    await Promise.all([
      this.start("redis", "redis-server", ["--port", `${redis}`, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"], redis),
      this.start("emulator", PYTHON, ["-m", "service", "emulator", "--port", `${emulator}`, "--kyc-auto-approve-seconds", "-1"], emulator),
      this.start("service", PYTHON, ["-m", "service", "serve", "--host", "127.0.0.1", "--port", `${service}`], service, {
        AUTH_JWT_SECRET: JWT_SECRET,
        REDIS_URL: `redis://127.0.0.1:${redis}/0`,
        YATIVO_BASE_URL: `${this.emulator}/api/v1`,
        YATIVO_API_KEY: "yativo_test",
        YATIVO_API_SECRET: "s3cret",
      }),
    ]);
    return this;
  }

  async down(): Promise<void> {
    await Promise.all(
      this.children.map(
        (child) =>
          new Promise<void>((resolve) => {
            if (child.exitCode !== null) return resolve();
            const kill = setTimeout(() => child.kill("SIGKILL"), 10_000);
            child.once("exit", () => (clearTimeout(kill), resolve()));
            child.kill("SIGTERM");
          }),
      ),
    );
    rmSync(this.logs, { recursive: true, force: true });
  }

  token(sub: string): string {
    const script = "import sys; from service.http.auth import issue_dev_token; print(issue_dev_token(sys.argv[1], sys.argv[2]))";
    return execFileSync(PYTHON, ["-c", script, JWT_SECRET, sub], { cwd: ROOT }).toString().trim();
  }

  client(sub: string, options: Partial<ClientOptions> = {}): OnboardingClient {
    const token = this.token(sub);
    return createOnboardingClient({ baseUrl: this.service, getToken: () => token, ...options });
  }

  async control(path: string, init?: RequestInit): Promise<unknown> {
    const response = await fetch(`${this.emulator}/_emulator${path}`, {
      ...init,
      headers: { "Content-Type": "application/json", ...(init?.headers ?? {}) },
    });
    if (!response.ok) throw new Error(`emulator ${path}: ${response.status} ${await response.text()}`);
    return response.status === 204 ? null : response.json();
  }

  /** The last code the emulator "sent" to this email address or phone number. */
  async code(to: string): Promise<string> {
    const { messages } = (await this.control(`/outbox?${new URLSearchParams({ to })}`)) as { messages: { code: string }[] };
    const last = messages.at(-1);
    if (!last) throw new Error(`no code sent to ${to}`);
    return last.code;
  }

  async setKyc(email: string, status: string): Promise<void> {
    await this.control(`/customers/${encodeURIComponent(email)}/kyc`, { method: "POST", body: JSON.stringify({ status }) });
  }

  async fault(spec: Record<string, unknown>): Promise<void> {
    await this.control("/faults", { method: "POST", body: JSON.stringify(spec) });
  }
}
