// The one seam for HTTP: every call goes through `api()`, which adds the bearer
// token, parses JSON and turns the controller's `{"error", "detail"}` bodies
// (and network failures) into an `ApiError` whose message a person can read.

export interface Session {
  token: string;
  expiresAt: string | null; // ISO time, when the controller said
  via: "code" | "certificate";
  name: string | null; // whose session: the identity behind the code or certificate
  role: string | null; // admin, operator or auditor
}

const STORAGE_KEY = "ztos.session";

export class ApiError extends Error {
  constructor(
    readonly status: number, // 0: the controller could not be reached
    readonly code: string,
    readonly detail: string,
  ) {
    super(detail);
    this.name = "ApiError";
  }

  /** What to show: the controller's own sentence, with a hint for the usual causes. */
  get readable(): string {
    const hints: Record<number, string> = {
      0: "Check that the controller is running and reachable from this browser.",
      401: "Sign in again with a fresh login code (ztos security login-link).",
      403: "Your identity's role does not allow this; ask an admin.",
    };
    const hint = hints[this.status];
    return hint ? `${this.detail} — ${hint}` : this.detail;
  }
}

/** A readable sentence for anything thrown by a call. */
export function describe(err: unknown): string {
  if (err instanceof ApiError) return err.readable;
  if (err instanceof Error) return err.message;
  return String(err);
}

// --- the session (bearer token), kept in sessionStorage: one tab, gone with it ---------

type Listener = () => void;
const sessionListeners = new Set<Listener>();
let current: Session | null = loadSession();
let expiryTimer: number | undefined;
scheduleExpiry();

function loadSession(): Session | null {
  try {
    const raw = sessionStorage.getItem(STORAGE_KEY);
    const parsed = raw ? (JSON.parse(raw) as Session) : null;
    if (parsed && parsed.expiresAt && Date.parse(parsed.expiresAt) <= Date.now()) return null;
    return parsed && typeof parsed.token === "string" ? parsed : null;
  } catch {
    return null;
  }
}

export function session(): Session | null {
  return current;
}

export function onSessionChange(listener: Listener): () => void {
  sessionListeners.add(listener);
  return () => sessionListeners.delete(listener);
}

/** Why the last session ended (shown on the login page), if it did not end by choice. */
export let endedBecause: string | null = null;

export function setSession(next: Session | null, reason: string | null = null): void {
  current = next;
  endedBecause = next ? null : reason;
  try {
    if (next) sessionStorage.setItem(STORAGE_KEY, JSON.stringify(next));
    else sessionStorage.removeItem(STORAGE_KEY);
  } catch {
    // private mode without storage: the session lives in memory only
  }
  scheduleExpiry();
  sessionListeners.forEach((l) => l());
}

function scheduleExpiry(): void {
  window.clearTimeout(expiryTimer);
  if (!current?.expiresAt) return;
  const left = Date.parse(current.expiresAt) - Date.now();
  // setTimeout overflows above ~24.8 days; such sessions are checked on the next call instead
  if (left < 2 ** 31 - 1) {
    expiryTimer = window.setTimeout(
      () => setSession(null, "Your session expired. Sign in again."),
      Math.max(left, 0),
    );
  }
}

// --- calls ---------------------------------------------------------------------------------

export interface CallOptions {
  method?: string;
  body?: unknown;
  query?: Record<string, string | number | boolean | undefined | null>;
  signal?: AbortSignal;
  /** Do not end the session on 401 (used by the login calls themselves). */
  anonymous?: boolean;
}

export function url(path: string, query?: CallOptions["query"]): string {
  const params = new URLSearchParams();
  for (const [k, v] of Object.entries(query ?? {})) {
    if (v !== undefined && v !== null && v !== "") params.set(k, String(v));
  }
  const qs = params.toString();
  return qs ? `${path}?${qs}` : path;
}

export function headers(extra: Record<string, string> = {}): Record<string, string> {
  const h: Record<string, string> = { Accept: "application/json", ...extra };
  if (current) h.Authorization = `Bearer ${current.token}`;
  return h;
}

export async function api<T>(path: string, opts: CallOptions = {}): Promise<T> {
  let response: Response;
  try {
    response = await fetch(url(path, opts.query), {
      method: opts.method ?? (opts.body === undefined ? "GET" : "POST"),
      headers: headers(opts.body === undefined ? {} : { "Content-Type": "application/json" }),
      body: opts.body === undefined ? undefined : JSON.stringify(opts.body),
      credentials: "same-origin",
      signal: opts.signal,
    });
  } catch (err) {
    if (err instanceof DOMException && err.name === "AbortError") throw err;
    throw new ApiError(0, "unreachable", `The controller did not answer (${describe(err)}).`);
  }
  if (response.status === 204) return undefined as T;
  const text = await response.text();
  if (!response.ok) throw failure(response, text, opts.anonymous ?? false);
  if (!text) return undefined as T;
  try {
    return JSON.parse(text) as T;
  } catch {
    return text as T; // text/plain routes (the CRL)
  }
}

export function failure(response: Response, text: string, anonymous: boolean): ApiError {
  let code = `http_${response.status}`;
  let detail = `${response.status} ${response.statusText || "error"} from ${new URL(response.url).pathname}`;
  try {
    const body = JSON.parse(text) as { error?: unknown; detail?: unknown };
    if (typeof body.error === "string") code = body.error;
    if (typeof body.detail === "string") detail = body.detail;
    else if (body.detail !== undefined) detail = JSON.stringify(body.detail);
  } catch {
    if (text && text.length < 300 && !text.trimStart().startsWith("<")) detail = text.trim();
  }
  const error = new ApiError(response.status, code, detail);
  if (response.status === 401 && !anonymous && current) {
    setSession(null, `Signed out: ${detail}`);
  }
  return error;
}

// --- signing in --------------------------------------------------------------------------

interface TokenAnswer {
  token: string;
  expires_at?: string | null;
  name?: string;
  role?: string;
}

function sessionOf(answer: TokenAnswer, via: Session["via"]): Session {
  return { token: answer.token, expiresAt: answer.expires_at ?? null, via, name: answer.name ?? null, role: answer.role ?? null };
}

/** Trade a one-time login code (from `ztos security login-link`) for a bearer token. */
export async function exchangeCode(code: string): Promise<void> {
  const answer = await api<TokenAnswer>("/api/v1/session/exchange", {
    body: { code: code.trim() },
    anonymous: true,
  });
  setSession(sessionOf(answer, "code"));
}

/** A session from the client certificate this browser presented (mTLS), if any. */
export async function certificateSession(): Promise<void> {
  const answer = await api<TokenAnswer>("/api/v1/session", { method: "POST", anonymous: true });
  setSession(sessionOf(answer, "certificate"));
}

export async function signOut(): Promise<void> {
  // Best effort: a controller that supports it forgets the token at once.
  try {
    await api("/api/v1/session", { method: "DELETE", anonymous: true });
  } catch {
    // the token expires by itself
  }
  setSession(null);
}

/** The login code a login link carries: `https://controller:8443/#login=CODE`
 * (what `ztos security login-link` prints), also `?code=CODE`. */
export function codeFromLocation(loc: Location = window.location): string | null {
  return findCode(loc.hash) ?? findCode(loc.search);
}

function findCode(text: string): string | null {
  const match = /(?:^|[#?&/])(?:login|code)=([^&\s#]+)/.exec(text);
  return match ? decodeURIComponent(match[1]) : null;
}

/** Takes a pasted login link or a bare code and returns the code. */
export function codeFromInput(text: string): string {
  const trimmed = text.trim();
  return findCode(trimmed) ?? trimmed;
}
