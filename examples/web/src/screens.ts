// One screen per nextAction type. A screen knows what its call needs as input, never which screen comes next.
import { matchNextAction, type NextAction } from "@card-onboarding/sdk";
import { START, sameEndpoint, type Endpoint } from "./calls";
import { button, field, h, humanize, radioGroup, type Field } from "./dom";
import type { Context, FieldError, View } from "./view";

type Of<K extends NextAction["type"]> = Extract<NextAction, { type: K }>;

export function viewFor(action: NextAction, ctx: Context): View {
  return matchNextAction<View>(action, {
    provide_email: (a) => emailScreen(a.endpoint, ctx, "Get your virtual card", [
      h("p", {}, "Enter your email address. We will send you a code to confirm it."),
    ]),
    use_different_email: (a) => emailScreen(a.endpoint, ctx, "Use a different email", [
      h("p", { class: "notice" }, EMAIL_REFUSALS[a.reason] ?? "This email address cannot be used for a card."),
    ]),
    verify_email_code: (a) => verifyEmailCode(a, ctx),
    complete_kyc: (a) => completeKyc(a, ctx),
    wait_for_kyc: (a) => waiting(a, ctx, "We are checking your identity", "This usually takes a few minutes."),
    answer_source_of_funds: (a) => sourceOfFunds(a, ctx),
    provide_phone: (a) => providePhone(a, ctx),
    verify_phone_code: (a) => verifyPhoneCode(a, ctx),
    wait_for_account: (a) => waiting(a, ctx, "We are preparing your card account", "This takes a moment."),
    create_card: (a) => createCard(a, ctx),
    done: () => done(ctx),
    contact_support: (a) => contactSupport(a, ctx),
    retry_later: (a) => retryLater(a, ctx),
    fix_input: (a) => fixInput(a, ctx),
    sign_in: (a) => signIn(a, ctx),
  });
}

const EMAIL_REFUSALS: Record<string, string> = {
  invalid: "That email address cannot receive our emails. Check it, or use another one.",
  issuer_email: "That address belongs to the card issuer. Use your own email address.",
  in_use: "That email address is already used for another card account.",
  not_reusable: "That email address cannot be used again. Use another one.",
};

const SUPPORT_REASONS: Record<string, string> = {
  kyc_rejected: "We could not verify your identity.",
  unknown_state: "Something about your application needs a person to look at it.",
};

// --- errors next to their fields -------------------------------------------------------------------------------

/** The messages of the field errors about `name` (`answers` also takes `answers[0].answer`). */
function errorFor(ctx: Context, name: string): string | null {
  const messages = ctx.errors.filter(about(name)).map((e) => e.message);
  return messages.length > 0 ? messages.join(" ") : null;
}

/** A problem that came back on this same screen (a wrong code) is about its one input; a fix_input is per field. */
function problemFor(ctx: Context, type: NextAction["type"]): string | null {
  return ctx.problem !== null && ctx.errors.length === 0 && ctx.current?.type === type ? ctx.problem.title : null;
}

/** Field errors no input on this screen owns (`owns` says which it does), under the problem's title, above the form. */
function summary(ctx: Context, owns: (e: FieldError) => boolean): HTMLElement | null {
  const loose = ctx.errors.filter((e) => !owns(e));
  if (loose.length === 0) return null;
  return h(
    "div",
    { class: "summary", role: "alert" },
    h("p", { class: "summary__title" }, ctx.problem?.title ?? "Check what you entered"),
    h("ul", {}, ...loose.map((e) => h("li", {}, e.message))),
  );
}

function about(...names: string[]): (e: FieldError) => boolean {
  return (e) => names.some((n) => e.field === n || e.field.startsWith(`${n}.`) || e.field.startsWith(`${n}[`));
}

function firstInvalid(fields: { wrapper: HTMLElement; input?: HTMLElement }[]): HTMLElement | null {
  for (const f of fields) {
    if (f.wrapper.classList.contains("field--error")) return f.input ?? f.wrapper.querySelector("input");
  }
  return null;
}

function form(onSubmit: () => void, ...children: (Node | null)[]): HTMLFormElement {
  // The service validates every input and answers fix_input with people's wording; the browser's own checks
  // would say it twice, differently.
  return h(
    "form",
    {
      novalidate: true,
      onsubmit: ((event: Event) => {
        event.preventDefault();
        onSubmit();
      }) as EventListener,
    },
    ...children,
  );
}

function submitButton(label: string): HTMLButtonElement {
  return h("button", { type: "submit", class: "primary" }, label);
}

// --- the screens -----------------------------------------------------------------------------------------------

function emailScreen(endpoint: Endpoint, ctx: Context, heading: string, intro: Node[]): View {
  const email = field({
    name: "email",
    label: "Email address",
    type: "email",
    autocomplete: "email",
    error: errorFor(ctx, "email"),
    value: ctx.errors.length > 0 ? (ctx.email ?? "") : "",
  });
  const content = [
    ...intro,
    summary(ctx, about("email")),
    form(() => ctx.submit(endpoint, { email: email.input.value.trim() }), email.wrapper, submitButton("Send me a code")),
  ];
  return { heading, content, focus: firstInvalid([email]) };
}

function codeField(ctx: Context, type: NextAction["type"], label: string, hint: string): Field {
  return field({
    name: "code",
    label,
    hint,
    inputmode: "numeric",
    autocomplete: "one-time-code",
    maxlength: 6,
    error: errorFor(ctx, "code") ?? problemFor(ctx, type),
  });
}

function verifyEmailCode(a: Of<"verify_email_code">, ctx: Context): View {
  const code = codeField(ctx, a.type, "Code from the email", `We sent a 6-digit code to ${a.emailMasked ?? "your email address"}.`);
  const resend = resendBlock(a, ctx);
  const expires = a.expiresAt ? h("p", { class: "hint" }, `The code works until ${clock(a.expiresAt)}.`) : null;
  const resent = ctx.problem === null && ctx.current?.type === a.type && ctx.via !== null && sameEndpoint(ctx.via, START);
  return {
    heading: "Check your email",
    content: [
      resent ? h("p", { class: "notice", role: "status" }, "We sent you a new code. Use the newest one.") : null,
      summary(ctx, about("code")),
      form(() => ctx.submit(a.endpoint, { code: code.input.value.trim() }), code.wrapper, expires, submitButton("Confirm")),
      resend.element,
    ],
    focus: firstInvalid([code]),
    start: resend.start,
  };
}

/** `resendAvailableAt` when the service sends it (RFC 3339 UTC, nullable); older services send nothing. */
function resendAt(a: Of<"verify_email_code">): Date | null {
  const value: unknown = "resendAvailableAt" in a ? (a as { resendAvailableAt?: unknown }).resendAvailableAt : null;
  if (typeof value !== "string") return null;
  const when = new Date(value);
  return Number.isNaN(when.getTime()) ? null : when;
}

function resendBlock(a: Of<"verify_email_code">, ctx: Context): { element: HTMLElement; start: (s: AbortSignal) => void } {
  const at = resendAt(a);
  const wait = h("p", { class: "hint", id: "resend-wait" });
  // After a reload the email is not known (only its masked form): ask for it with the new-code button.
  const email = ctx.email === null ? field({ name: "resend-email", label: "Your email address", type: "email", autocomplete: "email" }) : null;
  const send = h("button", { type: "submit", class: "secondary", "aria-describedby": "resend-wait" }, "Send a new code");
  const element = h(
    "section",
    { class: "resend", "aria-labelledby": "resend-title" },
    h("h2", { id: "resend-title" }, "No code?"),
    form(() => ctx.submit(START, { email: email ? email.input.value.trim() : ctx.email }), email?.wrapper ?? null, wait, send),
  );
  const start = (signal: AbortSignal): void => {
    if (at === null) return;
    countdown(at, signal, (left) => {
      send.disabled = left > 0;
      wait.textContent = left > 0 ? `You can ask for a new code in ${left} s.` : "You can ask for a new code now.";
    });
  };
  return { element, start };
}

function completeKyc(a: Of<"complete_kyc">, ctx: Context): View {
  const status = h("p", { class: "hint", role: "status" });
  const opened = (): void => {
    status.textContent = "When you finish the check in the other tab, this page moves on by itself.";
  };
  const link = h(
    "a",
    { href: a.url, target: "_blank", rel: "noopener", class: "button primary", onclick: opened as EventListener },
    "Open the identity check",
    h("span", { class: "visually-hidden" }, " (opens in a new tab)"),
  );
  return {
    heading: a.resubmission ? "Redo your identity check" : "Verify your identity",
    content: [
      h(
        "p",
        {},
        a.resubmission
          ? "The identity check needs another look: please go through it again."
          : "Our partner checks your identity document and takes a selfie. It opens in a new tab.",
      ),
      a.expiresAt ? h("p", { class: "hint" }, `The link works until ${clock(a.expiresAt)}.`) : null,
      link,
      status,
      h("p", {}, button("Get a new link", { class: "link", onclick: (() => ctx.submit(a.endpoint)) as EventListener })),
    ],
    // The check may be finished in the other tab or on another device: follow the state from the start.
    start: (signal) => ctx.poll(a.type, signal),
  };
}

function waiting(a: Of<"wait_for_kyc"> | Of<"wait_for_account">, ctx: Context, heading: string, text: string): View {
  return {
    heading,
    content: [
      h("p", {}, text),
      h("p", { class: "hint" }, "You can leave this page open: it moves on by itself."),
      h("div", { class: "spinner", "aria-hidden": "true" }),
    ],
    start: (signal) => ctx.poll(a.type, signal),
  };
}

function sourceOfFunds(a: Of<"answer_source_of_funds">, ctx: Context): View {
  // The service points at answers by their index in what was sent: map an index back to its question.
  const sent = (ctx.lastBody(a.endpoint)?.answers ?? []) as { question: string }[];
  const questionOf = (e: FieldError): string | null => {
    const m = /^answers\[(\d+)\]/.exec(e.field);
    const id = m === null ? null : (sent[Number(m[1])]?.question ?? null);
    return a.questions.some((q) => q.id === id) ? id : null;
  };
  const errorOf = (id: string): string | null => {
    const messages = ctx.errors.filter((e) => questionOf(e) === id).map((e) => e.message);
    return messages.length > 0 ? messages.join(" ") : null;
  };
  const groups = a.questions.map((q) =>
    radioGroup({
      name: q.id,
      legend: q.label,
      choices: q.options.map((o) => ({ value: o, label: humanize(o) })),
      error: errorOf(q.id),
    }),
  );
  const submit = (): void => {
    const answers = a.questions.flatMap((q, i) => {
      const answer = groups[i]?.selected();
      return answer ? [{ question: q.id, answer }] : [];
    });
    ctx.submit(a.endpoint, { answers });
  };
  return {
    heading: "About your money",
    content: [
      h("p", {}, "The law asks us where the money on your card comes from."),
      summary(ctx, (e) => questionOf(e) !== null),
      form(submit, ...groups.map((g) => g.wrapper), submitButton("Continue")),
    ],
    focus: groups.find((g) => g.wrapper.classList.contains("field--error"))?.wrapper.querySelector("input") ?? null,
  };
}

function providePhone(a: Of<"provide_phone">, ctx: Context): View {
  const phone = field({
    name: "phoneNumber",
    label: "Mobile phone number",
    hint: "With the country code, for example +14155552671.",
    type: "tel",
    autocomplete: "tel",
    error: errorFor(ctx, "phoneNumber"),
  });
  return {
    heading: "Add your phone number",
    content: [
      h("p", {}, "We send a code by SMS to confirm it."),
      summary(ctx, about("phoneNumber")),
      form(() => ctx.submit(a.endpoint, { phoneNumber: phone.input.value.replace(/[\s()-]/g, "") }), phone.wrapper, submitButton("Send me a code")),
    ],
    focus: firstInvalid([phone]),
  };
}

function verifyPhoneCode(a: Of<"verify_phone_code">, ctx: Context): View {
  const code = codeField(ctx, a.type, "Code from the SMS", `We sent a 6-digit code to ${a.phoneMasked ?? "your phone"}.`);
  return {
    heading: "Check your phone",
    content: [
      summary(ctx, about("code")),
      form(() => ctx.submit(a.endpoint, { code: code.input.value.trim() }), code.wrapper, submitButton("Confirm")),
    ],
    focus: firstInvalid([code]),
  };
}

function createCard(a: Of<"create_card">, ctx: Context): View {
  return {
    heading: "Create your virtual card",
    content: [
      h("p", {}, "Everything is checked. Your Visa virtual card is one step away."),
      summary(ctx, () => false),
      form(() => ctx.submit(a.endpoint), submitButton("Create my card")),
    ],
  };
}

function done(ctx: Context): View {
  const card = ctx.state?.card ?? null;
  const lastFour = card?.lastFour ?? null;
  return {
    heading: "Your card is ready",
    content: [
      h(
        "div",
        { class: "card", role: "img", "aria-label": lastFour ? `Visa virtual card ending in ${lastFour}` : "Visa virtual card" },
        h("span", { class: "card__brand", "aria-hidden": "true" }, "VISA"),
        h("span", { class: "card__number", "aria-hidden": "true" }, `•••• •••• •••• ${lastFour ?? "••••"}`),
      ),
      h("p", {}, lastFour ? `Your virtual card ending in ${lastFour} is active.` : "Your virtual card is active."),
    ],
  };
}

function contactSupport(a: Of<"contact_support">, ctx: Context): View {
  return {
    heading: "Please contact support",
    content: [
      h("p", {}, SUPPORT_REASONS[a.reason] ?? "We cannot go on with your application online."),
      h("p", {}, "Our support team can help you finish it."),
      button("Check again", { onclick: (() => ctx.submit(a.endpoint)) as EventListener }),
    ],
  };
}

function retryLater(a: Of<"retry_later">, ctx: Context): View {
  const left = h("span", { class: "countdown" });
  const until = new Date(Date.now() + a.retryAfterSeconds * 1000);
  const now = button("Try now", { onclick: (() => ctx.retry(a.endpoint)) as EventListener });
  return {
    heading: "The service is busy",
    banner: true,
    content: [h("p", {}, "We could not finish that just now. ", left), now],
    start: (signal) =>
      countdown(until, signal, (s) => {
        left.textContent = s > 0 ? `Trying again in ${s} s.` : "Trying again…";
        if (s === 0) ctx.retry(a.endpoint);
      }),
  };
}

function fixInput(a: Of<"fix_input">, ctx: Context): View {
  // The errors are about the call the screen on the page made: show that screen again with them beside its fields.
  const current = ctx.current;
  if (current !== null && current.type !== "fix_input" && sameEndpoint(current.endpoint, a.endpoint)) return ctx.viewOf(current);
  if (sameEndpoint(a.endpoint, START)) return ctx.viewOf({ type: "provide_email", endpoint: START } as NextAction);
  return {
    heading: "Check what you entered",
    content: [
      summary(ctx, () => false),
      button("Continue", { class: "primary", onclick: (() => ctx.submit({ method: "GET", path: START.path })) as EventListener }),
    ],
  };
}

function signIn(a: Of<"sign_in">, ctx: Context): View {
  const token = h("textarea", { id: "signin-token", name: "token", rows: 3, autocomplete: "off", spellcheck: "false" });
  return {
    heading: "Sign in again",
    content: [
      h("p", {}, "Your session has ended. Sign in again to go on where you left off."),
      form(
        () => {
          const value = token.value.trim();
          if (value) ctx.useToken(value);
          else ctx.submit(a.endpoint);
        },
        h("div", { class: "field" }, h("label", { for: "signin-token" }, "Access token (development)"), token),
        submitButton("Sign in"),
      ),
    ],
  };
}

// --- time ------------------------------------------------------------------------------------------------------

function clock(iso: string): string {
  const when = new Date(iso);
  return Number.isNaN(when.getTime()) ? iso : when.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
}

/** Calls `tick` with the whole seconds left until `until`, now and every second, ending with 0; stops on abort. */
export function countdown(until: Date, signal: AbortSignal, tick: (secondsLeft: number) => void): void {
  const left = (): number => Math.max(0, Math.ceil((until.getTime() - Date.now()) / 1000));
  let last = left();
  tick(last);
  if (last === 0) return;
  const timer = setInterval(() => {
    const now = left();
    if (now === last) return;
    last = now;
    tick(now);
    if (now === 0) clearInterval(timer);
  }, 250);
  signal.addEventListener("abort", () => clearInterval(timer), { once: true });
}
