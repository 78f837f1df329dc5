// The access token, for development: `?token=` in the address, one pasted into the token box, or the dev stack's own.
const KEY = "card-onboarding.token";

export class Tokens {
  private constructor(private token: string | null) {}

  /** `?token=` wins (and leaves the address bar), then one pasted earlier in this tab, then `config.json`'s. */
  static async load(): Promise<Tokens> {
    const url = new URL(window.location.href);
    const fromUrl = url.searchParams.get("token");
    if (fromUrl) {
      url.searchParams.delete("token");
      window.history.replaceState(null, "", url);
      sessionStorage.setItem(KEY, fromUrl);
      return new Tokens(fromUrl);
    }
    const pasted = sessionStorage.getItem(KEY);
    if (pasted) return new Tokens(pasted);
    return new Tokens(await fromDevStack());
  }

  get(): string | null {
    return this.token;
  }

  set(token: string): void {
    this.token = token;
    sessionStorage.setItem(KEY, token);
  }
}

async function fromDevStack(): Promise<string | null> {
  try {
    const response = await fetch("./config.json", { headers: { Accept: "application/json" } });
    if (!response.ok) return null;
    const config = (await response.json()) as { token?: unknown };
    return typeof config.token === "string" ? config.token : null;
  } catch {
    return null;
  }
}
