// What a screen is made of, and what a screen may ask of the app: the contract between screens.ts and app.ts.
import type { NextAction, OnboardingState, Problem } from "@card-onboarding/sdk";
import type { Body, Endpoint } from "./calls";

export interface FieldError {
  field: string;
  message: string;
}

export interface View {
  heading: string;
  content: (Node | string | null)[];
  /** Runs once the view is on the page (polling, countdowns); stops when the signal aborts. */
  start?: (signal: AbortSignal) => void;
  /** Shown as a banner over the current screen instead of replacing it (`retry_later`). */
  banner?: boolean;
  /** Where focus goes instead of the heading: the field with an error when the same screen comes back. */
  focus?: HTMLElement | null;
}

export interface Context {
  /** The failure that brought this screen, if the answer was one. */
  readonly problem: Problem | null;
  /** Field errors of a `fix_input` for this screen's call. */
  readonly errors: readonly FieldError[];
  /** The last successful state (progress, masked email and phone, the card). */
  readonly state: OnboardingState | null;
  /** The email the user typed last, kept in memory only: starting again with it sends a new code. */
  readonly email: string | null;
  /** The call whose answer this is (null for a poll). */
  readonly via: Endpoint | null;
  /** The screen on the page now, if any. */
  readonly current: NextAction | null;
  /** The body last sent to an endpoint (to retry it, and to tie `answers[2]` back to a question). */
  lastBody(endpoint: Endpoint): Body;
  /** Make the call an endpoint names and show the answer. */
  submit(endpoint: Endpoint, body?: Body): void;
  /** Send the last body to `endpoint` again (a `retry_later` that ran out). */
  retry(endpoint: Endpoint): void;
  /** Read the state until its nextAction is no longer `type`, following the service's pace; then show it. */
  poll(type: NextAction["type"], signal: AbortSignal): void;
  /** Use another access token (development) and read the state with it. */
  useToken(token: string): void;
  /** The view of another action with this context's errors (how `fix_input` shows the form it is about). */
  viewOf(action: NextAction): View;
}
