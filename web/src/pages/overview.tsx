// Overview: how many hosts are up, down or revoked, and what needs attention
// (revoked hosts, hosts down, certificates expiring within 24 h, a broken
// audit chain). Reads the live store (nodes, security status, stream).

import { api } from "../api";
import { Card, ErrorBox, Loading, PageHeader, Pill, Table, useAsync, useTicker } from "../components";
import { datetime, relative } from "../format";
import { hostState, tenantsOf, useLive, type LiveState } from "../live";
import type { AuditEvent, AuditPage } from "../types";

const HOUR = 3600 * 1000;
const DAY = 24 * HOUR;
// Agents renew once two thirds of a certificate's life have passed (ztos.pki.needs_renewal):
// with the default 24 h lifetime that is 8 h before it ends.
const RENEWED_BY = 8 * HOUR;

export interface Alert {
  severity: "critical" | "warn" | "info";
  text: string;
}

const RANK = { critical: 0, warn: 1, info: 2 };

/** Every alert the overview shows, most severe first (pure, from the live state). */
export function alerts(live: LiveState, now = Date.now()): Alert[] {
  const out: Alert[] = [];
  const sec = live.security;
  if (sec && !sec.audit_chain_ok) {
    out.push({ severity: "critical", text: "The audit log's hash chain is broken: an entry was altered or removed." });
  }
  for (const node of live.nodes) {
    if (hostState(node, live) === "down") out.push({ severity: "critical", text: `Host ${node.name} is down.` });
  }
  for (const node of live.nodes.filter((n) => n.status === "revoked")) {
    out.push({ severity: "warn", text: `Host ${node.name} is revoked: it has no access to the mesh.` });
  }
  out.push(...certificateAlerts(live, now));
  return out.sort((a, b) => RANK[a.severity] - RANK[b.severity]);
}

/** Certificates (the newest of each identity) that end within 24 h. */
function certificateAlerts(live: LiveState, now: number): Alert[] {
  const revoked = new Set(live.nodes.filter((n) => n.status === "revoked").map((n) => n.name));
  const agents = new Set(live.nodes.filter((n) => n.status === "active" && n.role === "node").map((n) => n.name));
  const newest = new Map<string, number>();
  for (const cert of live.security?.certificates ?? []) {
    if (cert.revoked || revoked.has(cert.subject)) continue;
    newest.set(cert.subject, Math.max(newest.get(cert.subject) ?? 0, Date.parse(cert.not_after)));
  }
  const out: Alert[] = [];
  const routine: string[] = [];
  for (const [subject, until] of [...newest.entries()].sort((a, b) => a[1] - b[1])) {
    const left = until - now;
    if (left >= DAY) continue;
    const when = relative(new Date(until).toISOString(), now);
    if (left < HOUR) {
      out.push({ severity: "critical", text: `Certificate of ${subject} expires ${when}.` });
    } else if (agents.has(subject) && left > RENEWED_BY) {
      routine.push(`${subject} (${when})`);
    } else if (agents.has(subject)) {
      out.push({ severity: "warn", text: `Certificate of ${subject} expires ${when} and was not renewed: check its agent.` });
    } else {
      out.push({ severity: "warn", text: `Certificate of ${subject} expires ${when}: issue a new one before then.` });
    }
  }
  if (routine.length) {
    out.push({
      severity: "info",
      text:
        `${routine.length} host certificate${routine.length > 1 ? "s" : ""} expire within 24 h: ${routine.join(", ")}. ` +
        "Normal with short-lived certificates: agents renew theirs automatically.",
    });
  }
  return out;
}

function Counts({ live }: { live: LiveState }) {
  const states = live.nodes.map((n) => hostState(n, live));
  const count = (s: string) => states.filter((x) => x === s).length;
  const tiles = [
    { label: "Hosts up", value: count("up"), kind: "ok", id: "up" },
    { label: "Hosts down", value: count("down"), kind: count("down") ? "bad" : "ok", id: "down" },
    { label: "No data yet", value: count("unknown"), kind: "muted", id: "unknown" },
    { label: "Revoked", value: count("revoked"), kind: count("revoked") ? "warn" : "muted", id: "revoked" },
    { label: "Tenants", value: live.tenants.length, kind: "muted", id: "tenants" },
  ];
  return (
    <div class="tiles">
      {tiles.map((t) => (
        <div class={`tile tile-${t.kind}`} key={t.id} data-testid={`count-${t.id}`}>
          <span class="tile-value">{t.value}</span>
          <span class="tile-label">{t.label}</span>
        </div>
      ))}
    </div>
  );
}

function RecentAudit({ live }: { live: LiveState }) {
  const total = live.security?.audit_events ?? 0;
  const page = useAsync(
    (signal) => api<AuditPage>("/api/v1/monitoring/logs", { query: { after: Math.max(0, total - 8), limit: 8 }, signal }),
    [total],
  );
  const events: AuditEvent[] = live.recentAudit.length
    ? live.recentAudit.slice(0, 8)
    : [...(page.data?.events ?? [])].reverse();
  return (
    <Card title="Recent audit events">
      <ErrorBox error={page.error} onRetry={page.reload} />
      {!events.length && !page.error ? (
        <p class="muted">No events yet.</p>
      ) : (
        <Table label="Recent audit events">
          <thead>
            <tr>
              <th>When</th>
              <th>Actor</th>
              <th>Action</th>
              <th>Target</th>
              <th>Outcome</th>
            </tr>
          </thead>
          <tbody>
            {events.map((e) => (
              <tr key={e.seq}>
                <td class="nowrap">{datetime(e.at)}</td>
                <td>{e.actor}</td>
                <td>{e.action}</td>
                <td>{e.target}</td>
                <td>
                  <Pill kind={e.outcome === "ok" ? "ok" : "bad"}>{e.outcome}</Pill>
                </td>
              </tr>
            ))}
          </tbody>
        </Table>
      )}
      <a href="#/audit">Search the audit log →</a>
    </Card>
  );
}

export function Overview() {
  const live = useLive();
  const now = useTicker(30_000);
  if (!live.nodesLoaded && !live.loadError) return <Loading what="the network" />;
  const list = alerts(live, now);
  return (
    <>
      <PageHeader title="Overview" />
      <ErrorBox error={live.loadError} />
      <Counts live={live} />
      <Card title="Alerts">
        {!list.some((a) => a.severity !== "info") && (
          <p class="muted" data-testid="no-alerts">
            Nothing needs attention.
          </p>
        )}
        {list.length > 0 && (
          <ul class="alerts" data-testid="alerts">
            {list.map((a, i) => (
              <li key={i} class={`alert alert-${a.severity}`}>
                {a.text}
              </li>
            ))}
          </ul>
        )}
        {live.stream !== "live" && live.streamError && (
          <p class="muted small">Live data: {live.streamError}</p>
        )}
      </Card>
      <div class="grid2">
        <Card title="Hosts">
          <Table label="Hosts">
            <thead>
              <tr>
                <th>Host</th>
                <th>State</th>
                <th>Overlay</th>
                <th>Tenants</th>
              </tr>
            </thead>
            <tbody>
              {live.nodes.map((n) => {
                const s = hostState(n, live);
                return (
                  <tr key={n.name} data-host={n.name}>
                    <td>{n.name}</td>
                    <td>
                      <Pill kind={s === "up" ? "ok" : s === "unknown" ? "muted" : "bad"}>{s}</Pill>
                    </td>
                    <td class="mono">{n.overlay_ipv6}</td>
                    <td>{tenantsOf(n, live).join(", ") || "—"}</td>
                  </tr>
                );
              })}
              {!live.nodes.length && (
                <tr>
                  <td colSpan={4} class="muted">
                    No host has enrolled yet: <a href="#/onboard">add one</a>.
                  </td>
                </tr>
              )}
            </tbody>
          </Table>
        </Card>
        <RecentAudit live={live} />
      </div>
    </>
  );
}
