// What a nextAction's `endpoint` names, called through the SDK: the app never decides which call comes next.
import type { Answer, NextAction, NotModified, OnboardingClient } from "@card-onboarding/sdk";

export type Endpoint = NextAction["endpoint"];
export type Body = Record<string, unknown> | undefined;

// Starting again with the same email is how a new email code is asked for (the contract's "Starting again").
export const START: Endpoint = { method: "POST", path: "/v1/card-onboarding" };

type Call = (client: OnboardingClient, body: Body) => Promise<Answer | NotModified>;

// The request bodies are checked by the service: a wrong one comes back as `fix_input`, so they pass through as given.
const CALLS: Record<string, Call> = {
  "GET /v1/card-onboarding": (c) => c.getState(),
  "POST /v1/card-onboarding": (c, b) => c.start(b as Parameters<OnboardingClient["start"]>[0]),
  "POST /v1/card-onboarding/email-verification": (c, b) => c.verifyEmailCode(b as Parameters<OnboardingClient["verifyEmailCode"]>[0]),
  "POST /v1/card-onboarding/kyc-session": (c) => c.createKycSession(),
  "POST /v1/card-onboarding/source-of-funds": (c, b) => c.submitSourceOfFunds(b as Parameters<OnboardingClient["submitSourceOfFunds"]>[0]),
  "POST /v1/card-onboarding/phone": (c, b) => c.requestPhoneCode(b as Parameters<OnboardingClient["requestPhoneCode"]>[0]),
  "POST /v1/card-onboarding/phone-verification": (c, b) => c.verifyPhoneCode(b as Parameters<OnboardingClient["verifyPhoneCode"]>[0]),
  "POST /v1/card-onboarding/card": (c) => c.createCard(),
};

export function key(endpoint: Endpoint): string {
  return `${endpoint.method} ${endpoint.path}`;
}

export function sameEndpoint(a: Endpoint, b: Endpoint): boolean {
  return key(a) === key(b);
}

/** Call what `endpoint` names; an endpoint this build does not know falls back to reading the current state. */
export function invoke(client: OnboardingClient, endpoint: Endpoint, body: Body): Promise<Answer | NotModified> {
  const call = CALLS[key(endpoint)];
  if (call === undefined) {
    console.warn(`no call for ${key(endpoint)}: reading the current state instead`);
    return client.getState();
  }
  return call(client, endpoint.method === "GET" ? undefined : body);
}
