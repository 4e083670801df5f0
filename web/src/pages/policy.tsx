// Policy: the rules (default deny: each rule only allows), which identities
// each side admits, and the recent drops. Reads GET /api/v1/policies; a
// controller without a policy engine answers 404 and the page says so.
// When the controller does not list the admitted identities itself, they are
// resolved here from the policy's groups/services and the directory.

import { api, ApiError } from "../api";
import { Card, ErrorBox, Loading, Notice, PageHeader, Table, useAsync } from "../components";
import { datetime } from "../format";
import { useLive, type LiveState } from "../live";

type Obj = Record<string, unknown>;
type Selector = "*" | Partial<Record<string, string[]>>;

interface Rule {
  name: string;
  comment?: string;
  from: Selector;
  to: Selector;
  ports?: string[];
  when?: Obj[];
  admits?: { from?: string[]; to?: string[] };
}

interface PolicyDoc {
  version?: number;
  groups?: Record<string, { users?: string[]; workloads?: string[]; nodes?: string[]; comment?: string }>;
  roles?: Record<string, { users?: string[]; groups?: string[] }>;
  services?: Record<string, { tenant?: string; workloads?: string[]; tags?: string[]; ports?: string[] }>;
  rules?: Rule[];
}

interface Drop {
  at?: string;
  scope?: string;
  src?: string;
  dst?: string;
  proto?: string;
  port?: number | null;
  kind?: string;
  node?: string;
  count?: number;
}

interface PolicyView {
  doc: PolicyDoc | null;
  revision: string | null;
  drops: Drop[] | null;
}

const isObj = (v: unknown): v is Obj => typeof v === "object" && v !== null && !Array.isArray(v);

async function loadPolicy(signal: AbortSignal): Promise<PolicyView | "none"> {
  let raw: unknown;
  try {
    raw = await api<unknown>("/api/v1/policies", { signal });
  } catch (err) {
    if (err instanceof ApiError && [404, 405].includes(err.status)) return "none";
    throw err;
  }
  const body = isObj(raw) ? raw : {};
  const doc = (isObj(body.policy) ? body.policy : Array.isArray(body.rules) ? body : null) as PolicyDoc | null;
  const revision = [body.revision, body.digest, body.version].find((v) => typeof v === "string" || typeof v === "number");
  let drops = Array.isArray(body.drops) ? (body.drops as Drop[]) : null;
  if (drops === null) {
    drops = await api<unknown>("/api/v1/policies/drops", { signal })
      .then((d) => (Array.isArray(d) ? (d as Drop[]) : isObj(d) && Array.isArray(d.drops) ? (d.drops as Drop[]) : null))
      .catch(() => null);
  }
  return { doc, revision: revision === undefined ? null : String(revision), drops };
}

/** Who one side of a rule admits, as readable names. */
export function admitted(sel: Selector, doc: PolicyDoc, live: LiveState): string[] {
  if (sel === "*" || (isObj(sel) && (sel as Obj).any === true)) return ["everyone"];
  const out = new Set<string>();
  const s = sel as Partial<Record<string, string[]>>;
  for (const n of s.nodes ?? []) out.add(`host ${n}`);
  for (const w of s.workloads ?? []) out.add(`workload ${w}`);
  for (const u of s.users ?? []) out.add(`user ${u}`);
  for (const t of s.tags ?? []) out.add(`tag ${t}`);
  for (const g of s.groups ?? []) {
    const group = doc.groups?.[g];
    if (!group) out.add(`group ${g}`);
    for (const u of group?.users ?? []) out.add(`user ${u}`);
    for (const w of group?.workloads ?? []) out.add(`workload ${w}`);
    for (const n of group?.nodes ?? []) out.add(`host ${n}`);
  }
  for (const r of s.roles ?? []) {
    const role = doc.roles?.[r];
    if (!role) out.add(`role ${r}`);
    for (const u of role?.users ?? []) out.add(`user ${u}`);
    for (const g of role?.groups ?? []) out.add(`group ${g}`);
  }
  for (const t of s.tenants ?? []) {
    const serving = live.tenants.find((x) => x.name === t)?.nodes ?? [];
    out.add(serving.length ? `tenant ${t} (on ${serving.join(", ")})` : `tenant ${t}`);
  }
  for (const name of s.services ?? []) {
    const svc = doc.services?.[name];
    const members = [...(svc?.workloads ?? []), ...(svc?.tags ?? []).map((t) => `tag ${t}`)];
    out.add(`service ${name}${members.length ? ` (${members.join(", ")})` : ""}`);
  }
  return [...out];
}

function selectorText(sel: Selector): string {
  if (sel === "*") return "*";
  return Object.entries(sel)
    .filter(([, v]) => Array.isArray(v) && v.length)
    .map(([k, v]) => `${k}: ${(v as string[]).join(", ")}`)
    .join("; ");
}

function conditionText(c: Obj): string {
  if (typeof c.attr === "string") return `${c.attr} ${String(c.op ?? "")} ${c.value === undefined ? "" : JSON.stringify(c.value)}`.trim();
  if (typeof c.time === "string") {
    const days = Array.isArray(c.days) ? ` ${(c.days as string[]).join(",")}` : "";
    return `time ${c.time}${days}${c.tz ? ` ${String(c.tz)}` : ""}`;
  }
  return JSON.stringify(c);
}

type PolicyState = { mode: "open" | "default-deny" | "policy"; rev: number | null; detail: string };

/** No policy applied yet: the network is open, or closed by --default-deny; the controller says which. */
function NoPolicyNotice() {
  const state = useAsync((signal) => api<PolicyState>("/api/v1/policies/state", { signal }), []);
  if (state.loading && !state.data) return <Loading what="the policy state" />;
  if (!state.data) return <ErrorBox error={state.error} onRetry={state.reload} />;
  const open = state.data.mode === "open";
  return (
    <Notice>
      <strong data-testid="policy-mode">{open ? "Open network" : "Default deny"}</strong>: {state.data.detail}
      {open && (
        <>
          {" "}
          Apply a policy (<code>ztos policy apply FILE</code>) or close the network until then with{" "}
          <code>ztos network configure --default-deny</code>.
        </>
      )}
    </Notice>
  );
}

export function PolicyPage() {
  const live = useLive();
  const policy = useAsync(loadPolicy, []);
  if (policy.loading && !policy.data) return <Loading what="the policy" />;
  if (policy.data === "none") {
    return (
      <>
        <PageHeader title="Policy" />
        <NoPolicyNotice />
      </>
    );
  }
  const view = policy.data;
  const doc = view?.doc ?? {};
  const rules = doc.rules ?? [];
  return (
    <>
      <PageHeader title="Policy">
        <button type="button" onClick={policy.reload}>
          Refresh
        </button>
      </PageHeader>
      <ErrorBox error={policy.error} onRetry={policy.reload} />
      {view && (
        <p class="muted">
          Default deny: traffic is allowed only when a rule admits it.
          {view.revision ? ` Policy revision ${view.revision}.` : ""}
        </p>
      )}
      <Card title={`Rules (${rules.length})`}>
        {rules.length === 0 ? (
          <p class="muted">No rules: nothing is allowed between workloads.</p>
        ) : (
          <Table label="Policy rules">
            <thead>
              <tr>
                <th>Rule</th>
                <th>From</th>
                <th>To</th>
                <th>Ports</th>
                <th>When</th>
              </tr>
            </thead>
            <tbody>
              {rules.map((r) => (
                <tr key={r.name}>
                  <td>
                    <strong>{r.name}</strong>
                    {r.comment && <div class="muted small">{r.comment}</div>}
                  </td>
                  <td>
                    <div class="mono small">{selectorText(r.from)}</div>
                    <div class="admits">{(r.admits?.from ?? admitted(r.from, doc, live)).join(", ")}</div>
                  </td>
                  <td>
                    <div class="mono small">{selectorText(r.to)}</div>
                    <div class="admits">{(r.admits?.to ?? admitted(r.to, doc, live)).join(", ")}</div>
                  </td>
                  <td class="mono">{(r.ports ?? []).join(", ") || "service ports"}</td>
                  <td>{(r.when ?? []).map(conditionText).join(" and ") || "always"}</td>
                </tr>
              ))}
            </tbody>
          </Table>
        )}
      </Card>
      <Card title="Recent drops">
        {view?.drops === null || view?.drops === undefined ? (
          <p class="muted">This controller does not report drops.</p>
        ) : view.drops.length === 0 ? (
          <p class="muted">No traffic was dropped recently.</p>
        ) : (
          <Table label="Recent drops">
            <thead>
              <tr>
                <th>When</th>
                <th>Where</th>
                <th>From</th>
                <th>To</th>
                <th>Flow</th>
              </tr>
            </thead>
            <tbody>
              {view.drops.map((d, i) => (
                <tr key={i}>
                  <td class="nowrap">{datetime(d.at)}</td>
                  <td>
                    {d.scope ?? "—"}
                    {d.node ? ` on ${d.node}` : ""}
                  </td>
                  <td>{d.src ?? "—"}</td>
                  <td>{d.dst ?? "—"}</td>
                  <td class="mono">
                    {d.proto ?? ""}
                    {d.port ? `/${d.port}` : ""}
                    {d.count && d.count > 1 ? ` ×${d.count}` : ""}
                  </td>
                </tr>
              ))}
            </tbody>
          </Table>
        )}
      </Card>
    </>
  );
}
