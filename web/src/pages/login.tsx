// Sign in: paste a one-time login code (or the whole login link) printed by
// `ztos security login-link`, or use the client certificate this browser holds.

import { useState } from "preact/hooks";
import { certificateSession, codeFromInput, describe, endedBecause, exchangeCode } from "../api";
import { ErrorBox } from "../components";

export function Login({ initialError }: { initialError: string | null }) {
  const [code, setCode] = useState("");
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(initialError);

  const submit = async (e: Event) => {
    e.preventDefault();
    const value = codeFromInput(code);
    if (!value) {
      setError("Paste the login code (or link) that `ztos security login-link` printed.");
      return;
    }
    setBusy(true);
    setError(null);
    try {
      await exchangeCode(value);
    } catch (err) {
      setError(describe(err));
    } finally {
      setBusy(false);
    }
  };

  const useCertificate = async () => {
    setBusy(true);
    setError(null);
    try {
      await certificateSession();
    } catch (err) {
      setError(describe(err));
    } finally {
      setBusy(false);
    }
  };

  return (
    <main class="login">
      <form class="card login-card" onSubmit={submit}>
        <h1>ZTOS dashboard</h1>
        {endedBecause && !error && <p class="notice warn">{endedBecause}</p>}
        <label for="code">One-time login code</label>
        <input
          id="code"
          name="code"
          autocomplete="one-time-code"
          spellcheck={false}
          placeholder="paste the code or login link"
          value={code}
          onInput={(e) => setCode((e.target as HTMLInputElement).value)}
          disabled={busy}
        />
        <p class="muted small">
          On a machine with an admin identity run <code>ztos security login-link</code>; the code works once and
          expires within minutes.
        </p>
        <ErrorBox error={error} />
        <div class="row">
          <button type="submit" class="primary" disabled={busy}>
            {busy ? "Signing in…" : "Sign in"}
          </button>
          <button type="button" onClick={useCertificate} disabled={busy}>
            Use my client certificate
          </button>
        </div>
      </form>
    </main>
  );
}
