/**
 * The card onboarding API for web and mobile frontends: the generated types, a thin client on openapi-fetch
 * (token provider, X-Request-ID, bounded retries on retry_later, conditional polling) and an exhaustive matcher.
 */
import createClient from "openapi-fetch";

import type { components, paths } from "./generated/openapi.js";

export type { components, paths } from "./generated/openapi.js";

export type NextAction = components["schemas"]["NextAction"];
export type NextActionType = NextAction["type"];
export type OnboardingState = components["schemas"]["OnboardingState"];
export type Problem = components["schemas"]["Problem"];
export type ProblemCode = Problem["code"];

export type Answer =
  | { ok: true; status: number; state: OnboardingState; nextAction: NextAction; requestId: string | null; etag: string | null }
  | { ok: false; status: number; problem: Problem; nextAction: NextAction; requestId: string | null; retryAfterSeconds: number | null };
export type NotModified = { ok: true; status: 304; notModified: true; requestId: string | null; etag: string | null };

export interface ClientOptions {
  /** Where the API is, e.g. "http://127.0.0.1:8000" (no trailing path). */
  baseUrl: string;
  /** The user's token, asked for before every request (so a refreshed token is used at once); null sends none. */
  getToken: () => string | null | Promise<string | null>;
  fetch?: typeof fetch;
  /** Retries of an answer whose nextAction is retry_later, and of network failures (default 2). */
  maxRetries?: number;
  /** The longest wait before a retry (default 10 s); a longer Retry-After returns the answer instead. */
  maxRetryWaitSeconds?: number;
  /** The X-Request-ID of each call, kept over its retries (default crypto.randomUUID()). */
  requestId?: () => string;
}

export interface OnboardingClient {
  getState(opts?: { ifNoneMatch?: string | null }): Promise<Answer | NotModified>;
  start(body: { email: string }): Promise<Answer>;
  verifyEmailCode(body: { code: string }): Promise<Answer>;
  createKycSession(): Promise<Answer>;
  submitSourceOfFunds(body: { answers: { question: string; answer: string }[] }): Promise<Answer>;
  requestPhoneCode(body: { phoneNumber: string }): Promise<Answer>;
  verifyPhoneCode(body: { code: string }): Promise<Answer>;
  createCard(): Promise<Answer>;
  /**
   * Polls GET while nextAction is wait_for_kyc / wait_for_account (or while `until` says go on), sleeping
   * pollAfterSeconds between calls and sending If-None-Match; resolves with the first answer that is not a wait
   * (or that `until` accepts). `onAnswer` sees each new answer (a 304 is not one). Rejects with an AbortError
   * when `signal` aborts.
   */
  poll(opts?: { signal?: AbortSignal; onAnswer?: (a: Answer) => void; until?: (a: Answer) => boolean }): Promise<Answer>;
}

/** The API answered with something that is neither its state nor a problem (e.g. a proxy's HTML error page). */
export class UnexpectedAnswerError extends Error {
  readonly status: number;
  readonly requestId: string | null;

  constructor(status: number, requestId: string | null) {
    super(`unexpected answer from the card onboarding API (HTTP ${status})`);
    this.name = "UnexpectedAnswerError";
    this.status = status;
    this.requestId = requestId;
  }
}

type Handlers<R> = { [K in NextActionType]: (a: Extract<NextAction, { type: K }>) => R };

/** Calls the handler of the action's type; every type must have one (a missing handler is a compile error). */
export function matchNextAction<R>(action: NextAction, handlers: Handlers<R>): R {
  const handler = handlers[action.type] as (a: NextAction) => R;
  return handler(action);
}

const WAITS: ReadonlySet<NextActionType> = new Set<NextActionType>(["wait_for_kyc", "wait_for_account"]);
const DEFAULT_POLL_SECONDS = 5;

type Sent = { data?: unknown; error?: unknown; response: Response };
type Call = (init: { headers: Record<string, string>; signal?: AbortSignal }) => Promise<Sent>;

export function createOnboardingClient(options: ClientOptions): OnboardingClient {
  const maxRetries = Math.max(0, options.maxRetries ?? 2);
  const maxWait = options.maxRetryWaitSeconds ?? 10;
  const newRequestId = options.requestId ?? (() => globalThis.crypto.randomUUID());
  const api = createClient<paths>({
    baseUrl: options.baseUrl.replace(/\/+$/, ""),
    ...(options.fetch ? { fetch: options.fetch } : {}),
  });

  async function send(call: Call, extra: Record<string, string>, signal?: AbortSignal): Promise<Answer | NotModified> {
    const requestId = newRequestId();
    for (let attempt = 0; ; attempt++) {
      throwIfAborted(signal);
      const token = await options.getToken();
      const headers: Record<string, string> = { ...extra, "X-Request-ID": requestId };
      if (token) headers["Authorization"] = `Bearer ${token}`;
      let answer: Answer | NotModified;
      try {
        answer = toAnswer(await call({ headers, ...(signal ? { signal } : {}) }));
      } catch (error) {
        throwIfAborted(signal);
        const transient = !(error instanceof UnexpectedAnswerError) || error.status >= 500;
        if (!transient || attempt >= maxRetries) throw error;
        await sleep(Math.min(maxWait, 0.5 * 2 ** attempt), signal);
        continue;
      }
      if (!answer.ok && answer.nextAction.type === "retry_later" && attempt < maxRetries) {
        const wait = answer.retryAfterSeconds ?? answer.nextAction.retryAfterSeconds;
        if (wait <= maxWait) {
          await sleep(wait, signal);
          continue;
        }
      }
      return answer;
    }
  }

  const json = { "Content-Type": "application/json" };
  const post = (call: Call, hasBody: boolean) => send(call, hasBody ? json : {}) as Promise<Answer>;

  async function getState(opts: { ifNoneMatch?: string | null; signal?: AbortSignal } = {}) {
    const extra: Record<string, string> = opts.ifNoneMatch ? { "If-None-Match": opts.ifNoneMatch } : {};
    // `cache: "no-store"`: the browser must hand the 304 to this code rather than answer from its own cache.
    return send((init) => api.GET("/v1/card-onboarding", { ...init, cache: "no-store" }), extra, opts.signal);
  }

  return {
    getState: (opts) => getState(opts ?? {}),
    start: (body) => post((init) => api.POST("/v1/card-onboarding", { ...init, body }), true),
    verifyEmailCode: (body) => post((init) => api.POST("/v1/card-onboarding/email-verification", { ...init, body }), true),
    createKycSession: () => post((init) => api.POST("/v1/card-onboarding/kyc-session", init), false),
    submitSourceOfFunds: (body) => post((init) => api.POST("/v1/card-onboarding/source-of-funds", { ...init, body }), true),
    requestPhoneCode: (body) => post((init) => api.POST("/v1/card-onboarding/phone", { ...init, body }), true),
    verifyPhoneCode: (body) => post((init) => api.POST("/v1/card-onboarding/phone-verification", { ...init, body }), true),
    createCard: () => post((init) => api.POST("/v1/card-onboarding/card", init), false),

    async poll(opts = {}) {
      const { signal, onAnswer, until } = opts;
      let current: Extract<Answer, { ok: true }> | null = null; // the state the ETag names
      for (;;) {
        const got = await getState({ ifNoneMatch: current?.etag ?? null, ...(signal ? { signal } : {}) });
        let answer: Answer;
        if ("notModified" in got) {
          if (current === null) throw new UnexpectedAnswerError(304, got.requestId); // never asked conditionally
          answer = current;
        } else {
          answer = got;
          if (got.ok) current = got;
          onAnswer?.(got);
        }
        if (until ? until(answer) : !WAITS.has(answer.nextAction.type)) return answer;
        await sleep(waitOf(answer), signal);
      }
    },
  };
}

function toAnswer({ data, error, response }: Sent): Answer | NotModified {
  const status = response.status;
  const requestId = response.headers.get("X-Request-ID");
  if (status === 304) return { ok: true, status: 304, notModified: true, requestId, etag: response.headers.get("ETag") };
  if (response.ok && isState(data)) {
    return { ok: true, status, state: data, nextAction: data.nextAction, requestId, etag: response.headers.get("ETag") };
  }
  if (!response.ok && isProblem(error)) {
    const retryAfterSeconds = parseRetryAfter(response.headers.get("Retry-After"));
    return { ok: false, status, problem: error, nextAction: error.nextAction, requestId: requestId ?? error.requestId, retryAfterSeconds };
  }
  throw new UnexpectedAnswerError(status, requestId);
}

function isAction(value: unknown): value is NextAction {
  return typeof value === "object" && value !== null && typeof (value as { type?: unknown }).type === "string";
}

function isState(value: unknown): value is OnboardingState {
  return typeof value === "object" && value !== null && isAction((value as { nextAction?: unknown }).nextAction);
}

function isProblem(value: unknown): value is Problem {
  return isState(value) && typeof (value as { code?: unknown }).code === "string";
}

/** Seconds from a Retry-After header: delta-seconds or an HTTP-date; null when absent or unreadable. */
function parseRetryAfter(value: string | null, now: number = Date.now()): number | null {
  if (value === null || value.trim() === "") return null;
  if (/^\d+$/.test(value.trim())) return Number(value.trim());
  const at = Date.parse(value);
  return Number.isNaN(at) ? null : Math.max(0, Math.ceil((at - now) / 1000));
}

function waitOf(answer: Answer): number {
  const action = answer.nextAction;
  if ("pollAfterSeconds" in action) return action.pollAfterSeconds;
  if (action.type === "retry_later") return answer.ok ? action.retryAfterSeconds : (answer.retryAfterSeconds ?? action.retryAfterSeconds);
  return DEFAULT_POLL_SECONDS;
}

function abortError(): DOMException {
  return new DOMException("The operation was aborted", "AbortError");
}

function throwIfAborted(signal?: AbortSignal): void {
  if (signal?.aborted) throw abortError();
}

function sleep(seconds: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(abortError());
    const onAbort = () => {
      clearTimeout(timer);
      reject(abortError());
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, Math.max(0, seconds) * 1000);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}
