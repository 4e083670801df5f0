// People and enrolment tokens: who may sign in (GET /api/v1/users) and the
// bootstrap tokens handed out (GET /api/v1/tokens, never a secret), each with a
// two-step "Revoke" like the hosts' (no browser dialog, works on a phone).
// Offboarding a person is POST /api/v1/users/{name}/revoke {reason}; killing a
// token is POST /api/v1/tokens/{id}/revoke. Both are admin only: anyone else
// gets the controller's 403 in words.

import { api, session } from "../api";
import { Card, ErrorBox, Loading, Notice, PageHeader, Pill, Table, useAsync, useTicker } from "../components";
import { datetime, relative, shortKey } from "../format";
import { refreshSecurity } from "../live";
import type { CertificateStatus, TokenInfo, UserInfo } from "../types";
import { ConfirmRevoke } from "./revoke";

/** The certificate a person signs in with now: the unrevoked, unexpired one that lasts longest. */
function currentCertificate(user: UserInfo, now: number): CertificateStatus | null {
  const valid = user.certificates.filter((c) => !c.revoked && Date.parse(c.not_after) > now);
  return valid.length ? valid[valid.length - 1] : null; // the controller sorts by expiry
}

type TokenState = "revoked" | "used" | "expired" | "unused";

function tokenState(t: TokenInfo, now: number): TokenState {
  if (t.revoked) return "revoked";
  if (t.used) return "used";
  return Date.parse(t.expires_at) <= now ? "expired" : "unused";
}

const TOKEN_PILL: Record<TokenState, string> = { revoked: "bad", used: "muted", expired: "muted", unused: "ok" };

function UsersCard({ users, onChange }: { users: UserInfo[]; onChange: () => void }) {
  const now = useTicker(30_000);
  const me = session()?.name ?? null;
  const revoke = async (name: string, reason: string) => {
    await api(`/api/v1/users/${encodeURIComponent(name)}/revoke`, { body: { reason } });
    onChange();
    await refreshSecurity().catch(() => undefined); // the certificate list on the other pages
  };
  return (
    <Card title={`People (${users.length})`}>
      <Table label="People">
        <thead>
          <tr>
            <th>Name</th>
            <th>Roles</th>
            <th>Status</th>
            <th>Current certificate</th>
            <th>Certificates</th>
            <th />
          </tr>
        </thead>
        <tbody data-testid="people-users">
          {users.map((u) => {
            const cert = currentCertificate(u, now);
            const state = u.revoked ? "revoked" : "active";
            return (
              <tr key={u.name} data-user={u.name} data-state={state}>
                <td>
                  {u.name}
                  {u.name === me && <div class="muted small">you</div>}
                </td>
                <td>{u.roles.join(", ") || "—"}</td>
                <td>{u.revoked ? <Pill kind="bad">revoked</Pill> : <Pill kind="ok">active</Pill>}</td>
                <td class="nowrap">
                  {cert ? (
                    <>
                      <span class="mono" title={cert.serial}>
                        {shortKey(cert.serial, 12)}
                      </span>{" "}
                      ({cert.role})
                      <div class="muted small" title={datetime(cert.not_after)}>
                        expires {relative(cert.not_after, now)}
                      </div>
                    </>
                  ) : (
                    <span class="muted">none valid</span>
                  )}
                </td>
                <td>{u.certificates.length}</td>
                <td>
                  {!u.revoked && (
                    <ConfirmRevoke
                      testid={`user-${u.name}`}
                      label={`user ${u.name}`}
                      target={u.name}
                      withReason
                      onRevoke={(reason) => revoke(u.name, reason)}
                    >
                      every certificate of theirs stops working at once, and their dashboard sessions end.
                      {u.name === me && " This is you: your own session ends too."} It cannot be undone; they
                      need a new token to come back.
                    </ConfirmRevoke>
                  )}
                </td>
              </tr>
            );
          })}
        </tbody>
      </Table>
      {!users.length && <p class="muted">No people yet.</p>}
    </Card>
  );
}

function TokensCard({ tokens, onChange }: { tokens: TokenInfo[]; onChange: () => void }) {
  const now = useTicker(30_000);
  const revoke = async (id: string) => {
    await api(`/api/v1/tokens/${encodeURIComponent(id)}/revoke`, { method: "POST" });
    onChange();
  };
  return (
    <Card title={`Enrolment tokens (${tokens.length})`}>
      <Table label="Enrolment tokens">
        <thead>
          <tr>
            <th>Token id</th>
            <th>For</th>
            <th>Role</th>
            <th>State</th>
            <th>Expires</th>
            <th>Created by</th>
            <th />
          </tr>
        </thead>
        <tbody data-testid="people-tokens">
          {tokens.map((t) => {
            const state = tokenState(t, now);
            return (
              <tr key={t.id} data-token={t.id} data-state={state}>
                <td class="mono">{t.id}</td>
                <td>{t.node_name}</td>
                <td>{t.role}</td>
                <td>
                  <Pill kind={TOKEN_PILL[state]}>{state}</Pill>
                </td>
                <td class="nowrap" title={datetime(t.expires_at)}>
                  {relative(t.expires_at, now)}
                </td>
                <td>{t.created_by}</td>
                <td>
                  {state === "unused" && (
                    <ConfirmRevoke
                      testid={`token-${t.id}`}
                      label={`token ${t.id}`}
                      target={`the token for ${t.node_name}`}
                      onRevoke={() => revoke(t.id)}
                    >
                      it can never enrol a {t.role === "node" ? "host" : "person"}, even before it expires (for a
                      token that leaked or is no longer needed). It cannot be undone.
                    </ConfirmRevoke>
                  )}
                </td>
              </tr>
            );
          })}
        </tbody>
      </Table>
      {!tokens.length && <p class="muted">No tokens yet: "Add a host" or `ztos token create` makes one.</p>}
    </Card>
  );
}

export function People() {
  const users = useAsync((signal) => api<UserInfo[]>("/api/v1/users", { signal }), []);
  const tokens = useAsync((signal) => api<TokenInfo[]>("/api/v1/tokens", { signal }), []);
  const role = session()?.role;
  const refresh = () => {
    users.reload();
    tokens.reload();
  };
  return (
    <>
      <PageHeader title="People & tokens">
        <button type="button" onClick={refresh} disabled={users.loading || tokens.loading}>
          Refresh
        </button>
      </PageHeader>
      {role && role !== "admin" && (
        <Notice>Signed in as {role}: only an admin may revoke people or tokens; the controller refuses anyone else.</Notice>
      )}
      <ErrorBox error={users.error} onRetry={users.reload} />
      {users.data ? <UsersCard users={users.data} onChange={users.reload} /> : !users.error && <Loading what="people" />}
      <ErrorBox error={tokens.error} onRetry={tokens.reload} />
      {tokens.data ? (
        <TokensCard tokens={tokens.data} onChange={tokens.reload} />
      ) : (
        !tokens.error && <Loading what="tokens" />
      )}
    </>
  );
}
