// The controller's JSON shapes the dashboard reads (src/ztos/model.py and the routes).

export type Role = "admin" | "operator" | "auditor" | "node";

export interface Node {
  name: string;
  role: Role;
  wg_public_key: string;
  overlay_ipv6: string;
  overlay_ipv4: string;
  endpoints: string[];
  listen_port: number;
  tenants: string[]; // derived from Tenant.nodes by the API; the dashboard reads live.tenants
  attributes: Record<string, string>;
  status: "active" | "revoked";
  cert_serial: string;
  enrolled_at: string;
  last_seen: string | null; // the agent's last call, written at most once a minute
}

export interface Tenant {
  name: string;
  vni: number;
  ipv6_prefix: string;
  ipv4_prefix: string | null;
  nodes: string[];
}

export interface CertificateStatus {
  serial: string;
  subject: string;
  role: Role;
  not_after: string;
  revoked: boolean;
}

export interface SecurityStatus {
  network: string;
  ca_fingerprint: string;
  ca_not_after: string;
  nodes_active: number;
  nodes_revoked: number;
  certificates: CertificateStatus[];
  audit_chain_ok: boolean;
  audit_events: number;
}

/** GET /api/v1/users: a person and every certificate of theirs (oldest expiry first). */
export interface UserInfo {
  name: string;
  roles: Role[];
  revoked: boolean; // every certificate of theirs is revoked
  certificates: CertificateStatus[];
}

/** GET /api/v1/tokens: a bootstrap token as listed, never its secret. */
export interface TokenInfo {
  id: string;
  node_name: string;
  role: Role;
  created_by: string;
  expires_at: string;
  used: boolean;
  revoked: boolean;
}

export interface AuditEvent {
  seq: number;
  at: string;
  actor: string;
  action: string;
  target: string;
  outcome: string;
  detail: string;
  prev_hash?: string;
  hash?: string;
}

export interface AuditPage {
  events: AuditEvent[];
  next_after: number;
  chain_ok: boolean | null;
  first_bad_seq: number | null;
}

export interface DnsZoneView {
  zone: string;
  server: string;
  port: number;
  backend: string;
  records: string[];
}

export interface Profile {
  ztos_profile: number;
  network: string;
  controllers: string[];
  domain: string | null;
  resolver: string | null;
  ca_fingerprint: string;
  token: string;
  node_name: string;
  role: Role;
  tenants: string[];
  attributes: Record<string, string>;
  signature: string;
  [extra: string]: unknown;
}

export interface TokenCreated {
  token: string;
  id: string;
  node_name: string;
  role: Role;
  expires_at: string;
  profile: Profile;
}

export interface WatchChange {
  rev: number;
  kind: string;
  key: string;
  op: string;
  data: Record<string, unknown> | null;
}

export interface WatchResult {
  revision: number;
  changes: WatchChange[];
}
