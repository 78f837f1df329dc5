// Compile-time guarantees of the generated types. `npm test` runs `tsc --noEmit` over this file first: each
// `@ts-expect-error` must meet an error, so a regression to a loose type (string) fails the build.
import { describe, expectTypeOf, it } from "vitest";

import { matchNextAction, type NextAction, type NextActionType, type ProblemCode } from "../src/index.js";

function screenOf(action: NextAction): string {
  switch (action.type) {
    case "provide_email":
    case "verify_email_code":
    case "complete_kyc":
    case "wait_for_kyc":
    case "answer_source_of_funds":
    case "provide_phone":
    case "verify_phone_code":
    case "wait_for_account":
    case "create_card":
    case "done":
    case "use_different_email":
    case "contact_support":
    case "retry_later":
    case "fix_input":
    case "sign_in":
      return action.type;
    default: {
      const unreachable: never = action;
      return unreachable;
    }
  }
}

function missingDone(action: NextAction): string {
  switch (action.type) {
    case "provide_email":
    case "verify_email_code":
    case "complete_kyc":
    case "wait_for_kyc":
    case "answer_source_of_funds":
    case "provide_phone":
    case "verify_phone_code":
    case "wait_for_account":
    case "create_card":
    case "use_different_email":
    case "contact_support":
    case "retry_later":
    case "fix_input":
    case "sign_in":
      return action.type;
    default: {
      // @ts-expect-error -- `done` is not handled, so `action` is not `never` here
      const unreachable: never = action;
      return unreachable;
    }
  }
}

describe("the generated types", () => {
  it("make a switch over nextAction.type exhaustive", () => {
    expectTypeOf(screenOf).returns.toEqualTypeOf<string>();
    expectTypeOf(missingDone).parameter(0).toEqualTypeOf<NextAction>();
  });

  it("narrow each variant by its type", () => {
    const action = { type: "wait_for_kyc", pollAfterSeconds: 5, endpoint: { method: "GET", path: "/v1/card-onboarding" } } as NextAction;
    if (action.type === "wait_for_kyc") expectTypeOf(action.pollAfterSeconds).toEqualTypeOf<number>();
    if (action.type === "complete_kyc") expectTypeOf(action.url).toEqualTypeOf<string>();
    if (action.type === "retry_later") expectTypeOf(action.retryAfterSeconds).toEqualTypeOf<number>();
  });

  it("reject an unknown error code or action type", () => {
    const known: ProblemCode = "otp_invalid";
    // @ts-expect-error -- a typo in an error code does not compile
    const typo: ProblemCode = "otp_invlaid";
    // @ts-expect-error -- nor does an action type the API does not have
    const unknown: NextActionType = "wait_for_card";
    expectTypeOf<ProblemCode>().not.toEqualTypeOf<string>();
    expectTypeOf<NextActionType>().not.toEqualTypeOf<string>();
    void [known, typo, unknown];
  });

  it("make matchNextAction demand a handler for every type", () => {
    const all = {
      provide_email: () => 1,
      verify_email_code: () => 2,
      complete_kyc: (a: Extract<NextAction, { type: "complete_kyc" }>) => a.url.length,
      wait_for_kyc: (a: Extract<NextAction, { type: "wait_for_kyc" }>) => a.pollAfterSeconds,
      answer_source_of_funds: () => 5,
      provide_phone: () => 6,
      verify_phone_code: () => 7,
      wait_for_account: () => 8,
      create_card: () => 9,
      done: () => 10,
      use_different_email: () => 11,
      contact_support: () => 12,
      retry_later: () => 13,
      fix_input: () => 14,
      sign_in: () => 15,
    };
    const action = { type: "done", endpoint: { method: "GET", path: "/v1/card-onboarding" } } as NextAction;
    expectTypeOf(matchNextAction(action, all)).toEqualTypeOf<number>();
    const { done: _done, ...withoutDone } = all;
    // Compiled, never called: the point is the compile error.
    const incomplete = () =>
      // @ts-expect-error -- the `done` handler is missing
      matchNextAction(action, withoutDone);
    expectTypeOf(incomplete).toBeFunction();
  });
});
