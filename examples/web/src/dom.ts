// Tiny DOM helpers: elements, labelled fields with their hint and error, and radio groups.

type Attrs = Record<string, string | number | boolean | null | undefined | EventListener>;
type Child = Node | string | null | undefined | false;

export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Attrs = {},
  ...children: Child[]
): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (typeof value === "function") el.addEventListener(name.replace(/^on/, ""), value);
    else el.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child);
  }
  return el;
}

export interface Field {
  readonly name: string;
  readonly wrapper: HTMLElement;
  readonly input: HTMLInputElement;
}

export interface FieldOptions {
  name: string;
  label: string;
  type?: string;
  hint?: string;
  error?: string | null;
  autocomplete?: string;
  inputmode?: string;
  value?: string;
  maxlength?: number;
}

/** A labelled input; its hint and error are tied to it with aria-describedby, so they are read with it. */
export function field(options: FieldOptions): Field {
  const id = `field-${options.name}`;
  const hintId = `${id}-hint`;
  const errorId = `${id}-error`;
  const input = h("input", {
    id,
    name: options.name,
    type: options.type ?? "text",
    autocomplete: options.autocomplete,
    inputmode: options.inputmode,
    maxlength: options.maxlength,
    spellcheck: options.type === "email" || options.inputmode === "numeric" ? "false" : undefined,
    "aria-describedby": [options.hint ? hintId : null, options.error ? errorId : null].filter(Boolean).join(" ") || null,
    "aria-invalid": options.error ? "true" : null,
  });
  if (options.value) input.value = options.value;
  const wrapper = h(
    "div",
    { class: options.error ? "field field--error" : "field" },
    h("label", { for: id }, options.label),
    options.hint ? h("p", { id: hintId, class: "hint" }, options.hint) : null,
    options.error ? h("p", { id: errorId, class: "error" }, h("span", { class: "visually-hidden" }, "Error: "), options.error) : null,
    input,
  );
  return { name: options.name, wrapper, input };
}

export interface RadioGroup {
  readonly name: string;
  readonly wrapper: HTMLFieldSetElement;
  selected(): string | null;
}

/** A fieldset whose legend is the question, one labelled radio per option (arrow keys move between them). */
export function radioGroup(options: {
  name: string;
  legend: string;
  choices: { value: string; label: string }[];
  error?: string | null;
}): RadioGroup {
  const errorId = `group-${options.name}-error`;
  const wrapper = h(
    "fieldset",
    {
      class: options.error ? "group field--error" : "group",
      "aria-describedby": options.error ? errorId : null,
    },
    h("legend", {}, options.legend),
    options.error ? h("p", { id: errorId, class: "error" }, h("span", { class: "visually-hidden" }, "Error: "), options.error) : null,
    ...options.choices.map((choice, index) => {
      const id = `radio-${options.name}-${index}`;
      return h(
        "div",
        { class: "choice" },
        h("input", { type: "radio", id, name: options.name, value: choice.value }),
        h("label", { for: id }, choice.label),
      );
    }),
  );
  return {
    name: options.name,
    wrapper,
    selected: () => wrapper.querySelector<HTMLInputElement>("input:checked")?.value ?? null,
  };
}

export function button(label: string, attrs: Attrs = {}): HTMLButtonElement {
  return h("button", { type: "button", ...attrs }, label);
}

/** "EMPLOYED" or "self_employed" read as "Employed" / "Self employed"; labels the service sends are kept as they are. */
export function humanize(value: string): string {
  if (!/^[A-Z0-9_]+$/.test(value) && !/^[a-z0-9_]+$/.test(value)) return value;
  const words = value.toLowerCase().replace(/_/g, " ");
  return words.charAt(0).toUpperCase() + words.slice(1);
}
