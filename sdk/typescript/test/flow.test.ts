// The SDK against the real service, emulator and Redis: the whole onboarding to `done`, a retry_later honoured
// through Retry-After, and a poll that is answered 304 while nothing changes.
import { afterAll, beforeAll, describe, expect, it } from "vitest";

import { matchNextAction, type Answer, type NextAction, type OnboardingClient } from "../src/index.js";
import { Stack } from "./stack.js";

let stack: Stack;

beforeAll(async () => {
  stack = new Stack(); // assigned first, so afterAll stops whatever did start when another process did not
  await stack.up();
});

afterAll(async () => {
  await stack?.down();
});

/** A fetch that records the status of every answer, so a test can see retries and 304s. */
function recording(onStatus?: (status: number) => Promise<void>) {
  const statuses: number[] = [];
  const wrapped: typeof fetch = async (input, init) => {
    const response = await fetch(input, init);
    statuses.push(response.status);
    await onStatus?.(response.status);
    return response;
  };
  return { fetch: wrapped, statuses };
}

function full(answer: Awaited<ReturnType<OnboardingClient["getState"]>>): Answer {
  if ("notModified" in answer) throw new Error("unexpected 304 without If-None-Match");
  return answer;
}

const past = (...types: NextAction["type"][]) => (a: Answer) => !types.includes(a.nextAction.type);

describe("the SDK against the real service", () => {
  it("drives a user from provide_email to done, one screen per nextAction", async () => {
    const email = "sdk-flow@example.com";
    const phone = "+14155550101";
    const client = stack.client("sdk-flow-user");
    const stuck = (a: NextAction): Promise<Answer> => Promise.reject(new Error(`stuck at ${a.type}`));
    const approved = async () => {
      await stack.setKyc(email, "approved");
      return client.poll({ until: past("complete_kyc", "wait_for_kyc") });
    };
    let answer = full(await client.getState());
    const screens: string[] = [answer.nextAction.type];
    for (let step = 0; step < 12 && answer.nextAction.type !== "done"; step++) {
      expect(answer.ok, JSON.stringify(answer)).toBe(true);
      answer = await matchNextAction<Promise<Answer>>(answer.nextAction, {
        provide_email: () => client.start({ email }),
        verify_email_code: async () => client.verifyEmailCode({ code: await stack.code(email) }),
        complete_kyc: approved,
        wait_for_kyc: approved,
        answer_source_of_funds: (a) =>
          client.submitSourceOfFunds({ answers: a.questions.map((q) => ({ question: q.id, answer: q.options[0] ?? "" })) }),
        provide_phone: () => client.requestPhoneCode({ phoneNumber: phone }),
        verify_phone_code: async () => client.verifyPhoneCode({ code: await stack.code(phone) }),
        wait_for_account: () => client.poll(),
        create_card: () => client.createCard(),
        done: stuck,
        use_different_email: stuck,
        contact_support: stuck,
        retry_later: stuck,
        fix_input: stuck,
        sign_in: stuck,
      });
      screens.push(answer.nextAction.type);
    }
    expect(screens).toEqual([
      "provide_email",
      "verify_email_code",
      "complete_kyc",
      "answer_source_of_funds",
      "provide_phone",
      "verify_phone_code",
      "create_card",
      "done",
    ]);
    expect(answer.ok && answer.state.card?.lastFour).toMatch(/^\d{4}$/);
    expect(answer.requestId).toMatch(/^[0-9a-f-]{36}$/);
  });

  it("answers sign_in as a problem, without throwing, when there is no token", async () => {
    const client = stack.client("nobody", { getToken: () => null });
    const answer = full(await client.getState());
    expect(answer).toMatchObject({ ok: false, status: 401, nextAction: { type: "sign_in" }, problem: { code: "unauthenticated" } });
  });

  it("waits out a retry_later as Retry-After asks, then succeeds", async () => {
    await stack.fault({ path: "/yativo-card/customers/onboard", status: 429, headers: { "Retry-After": "2" }, body: "{}", times: 1 });
    const { fetch, statuses } = recording();
    const answer = await stack.client("sdk-retry-user", { fetch }).start({ email: "sdk-retry@example.com" });
    expect(statuses).toEqual([503, 200]);
    expect(answer).toMatchObject({ ok: true, nextAction: { type: "verify_email_code" } });
  });

  it("hands back the retry_later when Retry-After is longer than it may wait", async () => {
    await stack.fault({ path: "/yativo-card/customers/onboard", status: 429, headers: { "Retry-After": "2" }, body: "{}", times: 1 });
    const { fetch, statuses } = recording();
    const client = stack.client("sdk-impatient-user", { fetch, maxRetryWaitSeconds: 1 });
    const answer = await client.start({ email: "sdk-impatient@example.com" });
    expect(statuses).toEqual([503]);
    expect(answer).toMatchObject({ ok: false, status: 503, retryAfterSeconds: 2, nextAction: { type: "retry_later" } });
  });

  it("polls through the KYC wait with 304s and resolves when the state moves on", async () => {
    const email = "sdk-poll@example.com";
    let approved = false;
    // The reviewer approves once the client has been told "not modified" at least once.
    const { fetch, statuses } = recording(async (status) => {
      if (status === 304 && !approved) {
        approved = true;
        await stack.setKyc(email, "approved");
      }
    });
    const client = stack.client("sdk-poll-user", { fetch });
    await client.start({ email });
    await client.verifyEmailCode({ code: await stack.code(email) });
    await stack.setKyc(email, "in_progress");
    const waiting = await client.poll({ until: (a) => a.nextAction.type === "wait_for_kyc" });
    expect(waiting.ok && waiting.etag).toMatch(/^"[0-9a-f]+"$/);
    statuses.length = 0;
    const seen: string[] = [];
    const moved = await client.poll({ onAnswer: (a) => seen.push(a.nextAction.type) });
    expect(moved.nextAction.type).toBe("answer_source_of_funds");
    expect(statuses[0]).toBe(200);
    expect(statuses).toContain(304);
    expect(statuses.at(-1)).toBe(200);
    expect(seen).toEqual(["wait_for_kyc", "answer_source_of_funds"]);
  });
});
