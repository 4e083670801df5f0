// Devices and certificates: every enrolled host with its certificate, the
// certificates the CA has issued (GET /api/v1/security/status), and the CA.

import { Card, ErrorBox, Loading, PageHeader, Pill, Table, useTicker } from "../components";
import { datetime, relative, shortKey } from "../format";
import { hostState, refreshNodes, refreshSecurity, tenantsOf, useLive } from "../live";
import { RevokeButton } from "./revoke";

export function Devices() {
  const live = useLive();
  const now = useTicker(30_000);
  const sec = live.security;
  if (!live.nodesLoaded && !live.loadError) return <Loading what="hosts" />;
  const certBySerial = new Map((sec?.certificates ?? []).map((c) => [c.serial, c]));
  return (
    <>
      <PageHeader title="Devices & certificates">
        <button type="button" onClick={() => void Promise.allSettled([refreshNodes(), refreshSecurity()])}>
          Refresh
        </button>
      </PageHeader>
      <ErrorBox error={live.loadError} />
      {sec && (
        <Card title="Certificate authority">
          <dl class="facts">
            <dt>Network</dt>
            <dd>{sec.network}</dd>
            <dt>CA fingerprint (SHA-256)</dt>
            <dd class="mono wrap">{sec.ca_fingerprint}</dd>
            <dt>CA valid until</dt>
            <dd>
              {datetime(sec.ca_not_after)} ({relative(sec.ca_not_after, now)})
            </dd>
            <dt>Audit chain</dt>
            <dd>
              {sec.audit_chain_ok ? <Pill kind="ok">intact</Pill> : <Pill kind="bad">broken</Pill>} ({sec.audit_events}{" "}
              events)
            </dd>
          </dl>
        </Card>
      )}
      <Card title={`Hosts (${live.nodes.length})`}>
        <Table label="Hosts">
          <thead>
            <tr>
              <th>Host</th>
              <th>State</th>
              <th>Role</th>
              <th>Overlay addresses</th>
              <th>Endpoints</th>
              <th>Tenants</th>
              <th>Enrolled</th>
              <th>Last seen</th>
              <th>Certificate</th>
              <th />
            </tr>
          </thead>
          <tbody data-testid="devices-hosts">
            {live.nodes.map((n) => {
              const state = hostState(n, live);
              const cert = certBySerial.get(n.cert_serial);
              return (
                <tr key={n.name} data-host={n.name} data-state={state}>
                  <td>{n.name}</td>
                  <td>
                    <Pill kind={state === "up" ? "ok" : state === "unknown" ? "muted" : "bad"}>{state}</Pill>
                  </td>
                  <td>{n.role}</td>
                  <td class="mono nowrap">
                    {n.overlay_ipv6}
                    <br />
                    {n.overlay_ipv4}
                  </td>
                  <td class="mono nowrap">
                    {n.endpoints.map((e) => (
                      <div key={e}>{e}</div>
                    ))}
                    {!n.endpoints.length && "—"}
                  </td>
                  <td>{tenantsOf(n, live).join(", ") || "—"}</td>
                  <td class="nowrap" title={datetime(n.enrolled_at)}>
                    {relative(n.enrolled_at, now)}
                  </td>
                  <td class="nowrap" data-testid="last-seen" title={n.last_seen ? datetime(n.last_seen) : "no call from its agent yet"}>
                    {n.last_seen ? relative(n.last_seen, now) : "never"}
                  </td>
                  <td class="nowrap">
                    <span class="mono" title={n.cert_serial}>
                      {shortKey(n.cert_serial, 12)}
                    </span>
                    <div class="muted small">{cert ? `expires ${relative(cert.not_after, now)}` : "—"}</div>
                  </td>
                  <td>{n.status !== "revoked" && <RevokeButton name={n.name} compact />}</td>
                </tr>
              );
            })}
          </tbody>
        </Table>
      </Card>
      <Card title={`Certificates (${sec?.certificates.length ?? 0} unexpired)`}>
        <Table label="Certificates">
          <thead>
            <tr>
              <th>Subject</th>
              <th>Role</th>
              <th>Serial</th>
              <th>Valid until</th>
              <th>Status</th>
            </tr>
          </thead>
          <tbody>
            {(sec?.certificates ?? []).map((c) => {
              const soon = Date.parse(c.not_after) - now < 24 * 3600 * 1000;
              return (
                <tr key={c.serial}>
                  <td>{c.subject}</td>
                  <td>{c.role}</td>
                  <td class="mono" title={c.serial}>
                    {shortKey(c.serial, 16)}
                  </td>
                  <td class="nowrap">
                    {datetime(c.not_after)} ({relative(c.not_after, now)})
                  </td>
                  <td>
                    {c.revoked ? (
                      <Pill kind="bad">revoked</Pill>
                    ) : soon ? (
                      <Pill kind="stale">expires within 24 h</Pill>
                    ) : (
                      <Pill kind="ok">valid</Pill>
                    )}
                  </td>
                </tr>
              );
            })}
          </tbody>
        </Table>
      </Card>
    </>
  );
}
