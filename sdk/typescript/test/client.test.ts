// The client's own rules against a scripted fetch: headers sent, retries bounded and honouring Retry-After,
// network failures rejected after the retries, polling with If-None-Match, and abort.
import { describe, expect, it } from "vitest";

import { createOnboardingClient, type Answer, type NextAction } from "../src/index.js";

const ENDPOINT = { method: "GET", path: "/v1/card-onboarding" } as const;
const state = (nextAction: NextAction) => ({ nextAction, progress: { step: 3, totalSteps: 6 }, emailMasked: null, phoneMasked: null, card: null });
const json = (status: number, body: unknown, headers: Record<string, string> = {}) =>
  new Response(JSON.stringify(body), { status, headers: { "Content-Type": status < 300 ? "application/json" : "application/problem+json", ...headers } });
const retryLater = (seconds: number) => ({
  type: "about:blank", title: "The card provider is unavailable", status: 503, code: "upstream_unavailable", retryable: true,
  requestId: "r1", nextAction: { type: "retry_later", retryAfterSeconds: seconds, endpoint: ENDPOINT },
});

function scripted(...answers: (Response | Error)[]) {
  const seen: Request[] = [];
  const fetch = async (input: RequestInfo | URL, init?: RequestInit) => {
    seen.push(new Request(input, init));
    const next = answers.shift();
    if (next === undefined) throw new Error("no more scripted answers");
    if (next instanceof Error) throw next;
    return next;
  };
  return { fetch: fetch as typeof globalThis.fetch, seen };
}

describe("the client", () => {
  it("sends the token, a request id kept over retries, and reads the answer", async () => {
    const { fetch, seen } = scripted(json(503, retryLater(0), { "Retry-After": "0" }), json(200, state({ type: "done", endpoint: ENDPOINT }), { ETag: '"e1"', "X-Request-ID": "id-1" }));
    let tokens = 0;
    const client = createOnboardingClient({ baseUrl: "http://api.test/", getToken: async () => `t${++tokens}`, fetch, requestId: () => "id-1" });
    const answer = await client.getState();
    expect(answer).toMatchObject({ ok: true, status: 200, etag: '"e1"', requestId: "id-1", nextAction: { type: "done" } });
    expect(seen.map((r) => r.url)).toEqual(["http://api.test/v1/card-onboarding", "http://api.test/v1/card-onboarding"]);
    expect(seen.map((r) => r.headers.get("authorization"))).toEqual(["Bearer t1", "Bearer t2"]);
    expect(seen.map((r) => r.headers.get("x-request-id"))).toEqual(["id-1", "id-1"]);
  });

  it("returns a problem as an answer, not an error, once the retries are spent", async () => {
    const { fetch, seen } = scripted(...[0, 1, 2].map(() => json(503, retryLater(0), { "Retry-After": "0" })));
    const client = createOnboardingClient({ baseUrl: "http://api.test", getToken: () => "t", fetch });
    const answer = await client.start({ email: "ada@example.com" });
    expect(answer).toMatchObject({ ok: false, status: 503, retryAfterSeconds: 0, problem: { code: "upstream_unavailable" } });
    expect(seen).toHaveLength(3);
    expect(seen[0]?.headers.get("content-type")).toBe("application/json");
  });

  it("does not sleep longer than maxRetryWaitSeconds: the answer comes back instead", async () => {
    const { fetch, seen } = scripted(json(429, { ...retryLater(30), status: 429, code: "rate_limited" }, { "Retry-After": "30" }));
    const client = createOnboardingClient({ baseUrl: "http://api.test", getToken: () => "t", fetch, maxRetryWaitSeconds: 1 });
    expect(await client.createCard()).toMatchObject({ ok: false, status: 429, retryAfterSeconds: 30 });
    expect(seen).toHaveLength(1);
  });

  it("does not retry a problem that is not retry_later", async () => {
    const problem = { ...retryLater(0), status: 422, code: "otp_invalid", retryable: false, nextAction: { type: "fix_input", endpoint: ENDPOINT, errors: [] } };
    const { fetch, seen } = scripted(json(422, problem));
    const client = createOnboardingClient({ baseUrl: "http://api.test", getToken: () => "t", fetch });
    expect(await client.verifyEmailCode({ code: "000000" })).toMatchObject({ ok: false, status: 422, nextAction: { type: "fix_input" } });
    expect(seen).toHaveLength(1);
  });

  it("rejects a network failure after the retries", async () => {
    const { fetch, seen } = scripted(new TypeError("fetch failed"), new TypeError("fetch failed"));
    const client = createOnboardingClient({ baseUrl: "http://api.test", getToken: () => null, fetch, maxRetries: 1, maxRetryWaitSeconds: 0 });
    await expect(client.getState()).rejects.toThrow("fetch failed");
    expect(seen).toHaveLength(2);
    expect(seen[0]?.headers.get("authorization")).toBeNull();
  });

  it("rejects an answer that is neither state nor problem", async () => {
    const { fetch } = scripted(new Response("<html>bad gateway</html>", { status: 400, headers: { "Content-Type": "text/html" } }));
    const client = createOnboardingClient({ baseUrl: "http://api.test", getToken: () => "t", fetch });
    await expect(client.getState()).rejects.toMatchObject({ name: "UnexpectedAnswerError", status: 400 });
  });

  it("polls with If-None-Match and keeps the known state on a 304", async () => {
    const wait = state({ type: "wait_for_account", pollAfterSeconds: 0, endpoint: ENDPOINT });
    const { fetch, seen } = scripted(
      json(200, wait, { ETag: '"w"' }),
      new Response(null, { status: 304, headers: { ETag: '"w"' } }),
      json(200, state({ type: "create_card", endpoint: { method: "POST", path: "/v1/card-onboarding/card" } }), { ETag: '"c"' }),
    );
    const seenAnswers: Answer[] = [];
    const client = createOnboardingClient({ baseUrl: "http://api.test", getToken: () => "t", fetch });
    const answer = await client.poll({ onAnswer: (a) => seenAnswers.push(a) });
    expect(answer.nextAction.type).toBe("create_card");
    expect(seen.map((r) => r.headers.get("if-none-match"))).toEqual([null, '"w"', '"w"']);
    expect(seenAnswers.map((a) => a.nextAction.type)).toEqual(["wait_for_account", "create_card"]);
  });

  it("stops polling with an AbortError when the signal aborts", async () => {
    const wait = state({ type: "wait_for_kyc", pollAfterSeconds: 30, endpoint: ENDPOINT });
    const { fetch } = scripted(json(200, wait, { ETag: '"w"' }));
    const client = createOnboardingClient({ baseUrl: "http://api.test", getToken: () => "t", fetch });
    const controller = new AbortController();
    const polling = client.poll({ signal: controller.signal, onAnswer: () => controller.abort() });
    await expect(polling).rejects.toMatchObject({ name: "AbortError" });
  });
});
