// The generic renderer: every answer's nextAction picks the screen; the call it names is the only way on.
import type { Answer, NextAction, OnboardingClient, OnboardingState, Problem } from "@card-onboarding/sdk";
import { START, invoke, key, sameEndpoint, type Body, type Endpoint } from "./calls";
import { button, h } from "./dom";
import { countdown, viewFor } from "./screens";
import type { Tokens } from "./token";
import type { Context, FieldError, View } from "./view";

const GET_STATE: Endpoint = { method: "GET", path: "/v1/card-onboarding" };
const OFFLINE_RETRY_SECONDS = 5;

export interface Shell {
  main: HTMLElement;
  banner: HTMLElement;
  announcer: HTMLElement;
  progress: HTMLElement;
}

interface Shown {
  action: NextAction;
  section: HTMLElement;
  stop: AbortController;
}

export class App {
  private shown: Shown | null = null;
  private bannerStop: AbortController | null = null;
  private state: OnboardingState | null = null;
  private email: string | null = null;
  private readonly bodies = new Map<string, Body>();

  constructor(
    private readonly client: OnboardingClient,
    private readonly shell: Shell,
    private readonly tokens: Tokens,
  ) {}

  start(): void {
    void this.submit(GET_STATE);
  }

  useToken(token: string): void {
    this.tokens.set(token);
    void this.submit(GET_STATE);
  }

  /** Make the call `endpoint` names and show its answer (never rejects: a failed network shows a banner). */
  async submit(endpoint: Endpoint, body?: Body): Promise<void> {
    if (body !== undefined) this.bodies.set(key(endpoint), body);
    if (sameEndpoint(endpoint, START) && typeof body?.email === "string") {
      this.email = body.email;
    }
    this.busy(true);
    let answer;
    try {
      answer = await invoke(this.client, endpoint, body);
    } catch (error) {
      console.error(error);
      this.busy(false);
      this.offline(endpoint);
      return;
    }
    this.busy(false);
    if ("notModified" in answer) return;
    this.show(answer, endpoint);
  }

  private show(answer: Answer, via: Endpoint | null = null): void {
    if (answer.ok) {
      this.state = answer.state;
      this.progress(answer.state);
    }
    const problem = answer.ok ? null : answer.problem;
    const errors: FieldError[] = answer.nextAction.type === "fix_input" ? [...answer.nextAction.errors] : [];
    const view = this.viewFor(answer.nextAction, problem, errors, via);
    if (view.banner) {
      this.banner(view);
      return;
    }
    // fix_input shows the screen it is about: that screen (not "fix_input") is what is on the page then.
    const next = answer.nextAction;
    const current = this.shown?.action;
    const action = next.type === "fix_input" && current && current.type !== "fix_input" && sameEndpoint(current.endpoint, next.endpoint) ? current : next;
    this.render(action, view);
  }

  private viewFor(action: NextAction, problem: Problem | null, errors: FieldError[], via: Endpoint | null): View {
    const ctx: Context = {
      problem,
      errors,
      via,
      state: this.state,
      email: this.email,
      current: this.shown?.action ?? null,
      lastBody: (endpoint) => this.bodies.get(key(endpoint)),
      submit: (endpoint, body) => void this.submit(endpoint, body),
      retry: (endpoint) => void this.submit(endpoint, this.bodies.get(key(endpoint))),
      poll: (type, signal) => this.poll(type, signal),
      useToken: (token) => this.useToken(token),
      viewOf: (other) => this.viewFor(other, problem, errors, via),
    };
    return viewFor(action, ctx);
  }

  private render(action: NextAction, view: View): void {
    this.clearBanner();
    this.shown?.stop.abort();
    const heading = h("h1", { id: "screen-heading", tabindex: -1 }, view.heading);
    const section = h("section", { "aria-labelledby": "screen-heading", "data-screen": action.type }, heading, ...view.content);
    this.shell.main.replaceChildren(section);
    document.title = `${view.heading} · Virtual card`;
    const stop = new AbortController();
    this.shown = { action, section, stop };
    // A new screen starts at its heading (screen readers read where they are); the same screen with an error
    // starts at the field to fix.
    (view.focus ?? heading).focus();
    view.start?.(stop.signal);
  }

  /** A banner over the screen on the page (which waits, inert, under it); it runs out by itself. */
  private banner(view: View): void {
    this.clearBanner();
    this.shown?.stop.abort();
    if (this.shown) this.shown.section.inert = true;
    if (this.shown === null) {
      this.shell.main.replaceChildren(h("section", { "data-screen": "retry_later" }, h("h1", { tabindex: -1 }, "Please wait")));
    }
    const title = h("h2", { id: "banner-title", tabindex: -1 }, view.heading);
    this.shell.banner.replaceChildren(h("div", { class: "banner", "data-banner": "retry_later" }, title, ...view.content));
    this.shell.banner.hidden = false;
    this.shell.announcer.textContent = `${view.heading}. We will try again by ourselves.`;
    title.focus();
    this.bannerStop = new AbortController();
    view.start?.(this.bannerStop.signal);
  }

  private clearBanner(): void {
    this.bannerStop?.abort();
    this.bannerStop = null;
    this.shell.banner.replaceChildren();
    this.shell.banner.hidden = true;
    if (this.shown) this.shown.section.inert = false;
  }

  /** The network failed (no answer at all): say so, and try the same call again in a few seconds. */
  private offline(endpoint: Endpoint): void {
    const left = h("span", { class: "countdown" });
    this.banner({
      heading: "You seem to be offline",
      banner: true,
      content: [
        h("p", {}, "We could not reach the service. ", left),
        button("Try now", { onclick: (() => void this.submit(endpoint, this.bodies.get(key(endpoint)))) as EventListener }),
      ],
      start: (signal) =>
        countdown(new Date(Date.now() + OFFLINE_RETRY_SECONDS * 1000), signal, (s) => {
          left.textContent = s > 0 ? `Trying again in ${s} s.` : "Trying again…";
          if (s === 0) void this.submit(endpoint, this.bodies.get(key(endpoint)));
        }),
    });
  }

  private poll(type: NextAction["type"], signal: AbortSignal): void {
    this.client
      .poll({ signal, until: (a) => a.nextAction.type !== type })
      .then((answer) => {
        if (!signal.aborted) this.show(answer);
      })
      .catch((error: unknown) => {
        if (signal.aborted) return;
        console.error(error);
        this.offline(GET_STATE);
      });
  }

  private busy(on: boolean): void {
    const section = this.shown?.section;
    if (!section) return;
    section.setAttribute("aria-busy", String(on));
    for (const control of section.querySelectorAll<HTMLButtonElement | HTMLInputElement>("button, input, textarea")) {
      if (on) {
        if (!control.disabled) control.dataset.busy = "1";
        control.disabled = true;
      } else if (control.dataset.busy) {
        delete control.dataset.busy;
        control.disabled = false;
      }
    }
  }

  private progress(state: OnboardingState): void {
    const { step, totalSteps } = state.progress;
    const label = h("span", { id: "progress-label" }, `Step ${step} of ${totalSteps}`);
    const bar = h("progress", { max: totalSteps, value: step, "aria-labelledby": "progress-label" });
    this.shell.progress.replaceChildren(label, bar);
  }
}
