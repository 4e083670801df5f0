// Revoke from the UI: a two-step button (no browser dialog, works on a phone).
// ConfirmRevoke is the shared two-step control (hosts here, people and tokens
// in people.tsx); RevokeButton revokes a host: POST /api/v1/nodes/{name}/revoke,
// then the live store refreshes; the change feed brings the same news to every
// other open dashboard.

import type { ComponentChildren } from "preact";
import { useState } from "preact/hooks";
import { api, describe } from "../api";
import { ErrorBox } from "../components";
import { refreshNodes, refreshSecurity } from "../live";

/** A two-step revoke: the first click explains what happens, the second does it. */
export function ConfirmRevoke({
  testid,
  label,
  target,
  withReason = false,
  buttonText = "Revoke…",
  children,
  onRevoke,
}: {
  testid: string; // revoke-<testid> and confirm-revoke-<testid>
  label: string; // what the button names: "user alice", "token abc…"
  target: string; // shown in bold in the explanation
  withReason?: boolean;
  buttonText?: string; // the first button's text
  children: ComponentChildren; // the explanation
  onRevoke: (reason: string) => Promise<void>;
}) {
  const [confirming, setConfirming] = useState(false);
  const [reason, setReason] = useState("revoked from the dashboard");
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);

  const revoke = async () => {
    setBusy(true);
    setError(null);
    try {
      await onRevoke(reason);
      setConfirming(false);
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
          data-testid={`revoke-${testid}`}
          aria-label={`Revoke ${label}`}
        >
          {buttonText}
        </button>
      </div>
    );
  }
  return (
    <div class="revoke confirm">
      <p>
        Revoking <strong>{target}</strong>: {children}
      </p>
      {withReason && (
        <label>
          Reason{" "}
          <input value={reason} maxLength={200} onInput={(e) => setReason((e.target as HTMLInputElement).value)} />
        </label>
      )}
      <ErrorBox error={error} />
      <div class="row">
        <button type="button" class="danger" disabled={busy} onClick={revoke} data-testid={`confirm-revoke-${testid}`}>
          {busy ? "Revoking…" : `Revoke ${label}`}
        </button>
        <button type="button" disabled={busy} onClick={() => setConfirming(false)}>
          Cancel
        </button>
      </div>
    </div>
  );
}

export function RevokeButton({ name, compact = false }: { name: string; compact?: boolean }) {
  const revoke = async (reason: string) => {
    await api(`/api/v1/nodes/${encodeURIComponent(name)}/revoke`, { body: { reason } });
    await Promise.allSettled([refreshNodes(), refreshSecurity()]);
  };
  return (
    <ConfirmRevoke
      testid={name}
      label={name}
      target={name}
      withReason
      buttonText={compact ? "Revoke…" : `Revoke ${name}…`}
      onRevoke={revoke}
    >
      it is cut off the mesh everywhere within seconds and its certificate is revoked. It cannot be undone; the host
      must enrol again with a new token.
    </ConfirmRevoke>
  );
}
