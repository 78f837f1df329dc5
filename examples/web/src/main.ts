// Entry point: the SDK client on this origin, the development token box, and the first read of the state.
import { createOnboardingClient } from "@card-onboarding/sdk";
import { App } from "./app";
import { Tokens } from "./token";

function byId(id: string): HTMLElement {
  const el = document.getElementById(id);
  if (el === null) throw new Error(`index.html lacks #${id}`);
  return el;
}

async function main(): Promise<void> {
  const tokens = await Tokens.load();
  const client = createOnboardingClient({
    // Served by the dev stack on the API's origin, so no CORS; a deployed app would point at its BFF here.
    baseUrl: window.location.origin,
    getToken: () => tokens.get(),
    // A busy service is shown (retry_later's banner and countdown) and retried by the app, not hidden in the SDK.
    maxRetries: 0,
  });
  const app = new App(client, {
    main: byId("screen"),
    banner: byId("banner"),
    announcer: byId("announcer"),
    progress: byId("progress"),
  }, tokens);

  const box = byId("token-form") as HTMLFormElement;
  const input = byId("token-input") as HTMLTextAreaElement;
  box.addEventListener("submit", (event) => {
    event.preventDefault();
    const value = input.value.trim();
    if (value) {
      input.value = "";
      app.useToken(value);
    }
  });
  app.start();
}

void main();
