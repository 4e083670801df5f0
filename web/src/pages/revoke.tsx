// Revoke a host from the UI: a two-step button (no browser dialog, works on a
// phone), POST /api/v1/nodes/{name}/revoke, then the live store refreshes; the
// change feed brings the same news to every other open dashboard.

import { useState } from "preact/hooks";
import { api, describe } from "../api";
import { ErrorBox } from "../components";
import { refreshNodes, refreshSecurity } from "../live";

export function RevokeButton({ name, compact = false }: { name: string; compact?: boolean }) {
  const [confirming, setConfirming] = useState(false);
  const [reason, setReason] = useState("revoked from the dashboard");
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);

  const revoke = async () => {
    setBusy(true);
    setError(null);
    try {
      await api(`/api/v1/nodes/${encodeURIComponent(name)}/revoke`, { body: { reason } });
      setConfirming(false);
      await Promise.allSettled([refreshNodes(), refreshSecurity()]);
    } catch (err) {
      setError(describe(err));
    } finally {
      setBusy(false);
    }
  };

  if (!confirming) {
    return (
      <div class="revoke">
        <button
          type="button"
          class="danger"
          onClick={() => setConfirming(true)}
          data-testid={`revoke-${name}`}
          aria-label={`Revoke ${name}`}
        >
          {compact ? "Revoke…" : `Revoke ${name}…`}
        </button>
      </div>
    );
  }
  return (
    <div class="revoke confirm">
      <p>
        Revoking <strong>{name}</strong> cuts it off the mesh everywhere within seconds and revokes its certificate.
        It cannot be undone; the host must enrol again with a new token.
      </p>
      <label>
        Reason{" "}
        <input value={reason} maxLength={200} onInput={(e) => setReason((e.target as HTMLInputElement).value)} />
      </label>
      <ErrorBox error={error} />
      <div class="row">
        <button type="button" class="danger" disabled={busy} onClick={revoke} data-testid={`confirm-revoke-${name}`}>
          {busy ? "Revoking…" : `Revoke ${name}`}
        </button>
        <button type="button" disabled={busy} onClick={() => setConfirming(false)}>
          Cancel
        </button>
      </div>
    </div>
  );
}
