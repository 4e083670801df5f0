// Pure: the controller's monitoring JSON as `Sample`s the pages draw.
//
// * a `tick` event of GET /api/v1/monitoring/stream (`StreamTick`): every
//   node's up/down and rates, one entry per (node, peer) link and per
//   (node, tenant), new audit events;
// * GET /api/v1/monitoring/metrics?detail=true (`MetricsView`): the same
//   latest figures plus each node's rate history (per peer and per tenant).
// Rates arrive in bytes per second and are kept here in bits per second.
// Both ends of a link report it: a->b is the larger of a's tx and b's rx.

import type { AuditEvent } from "./types";

export interface NodeSample {
  up: boolean | null;
  rx: number | null; // bits per second into the host (its WireGuard traffic)
  tx: number | null;
}

export interface LinkSample {
  a: string; // a < b
  b: string;
  handshakeAge: number | null; // seconds since the last WireGuard handshake, the fresher side
  ab: number | null; // bits per second a -> b
  ba: number | null;
}

export interface Sample {
  t: number; // epoch seconds
  nodes: Record<string, NodeSample>;
  links: Record<string, LinkSample>;
  tenants: Record<string, { rx: number | null; tx: number | null }>;
  audit: AuditEvent[];
}

// --- the controller's shapes (src/ztos/api/routes/monitoring.py, src/ztos/controller/metrics.py)

export interface StreamTick {
  at: string;
  nodes: {
    node: string;
    status: string;
    up: boolean;
    rx_rate: number;
    tx_rate: number;
    report_age_seconds?: number | null; // null: the agent never reported to this controller
  }[];
  links: { node: string; peer: string; rx_rate: number; tx_rate: number; handshake_age_seconds: number | null }[];
  tenants: { node: string; tenant: string; rx_rate: number; tx_rate: number }[];
  audit: AuditEvent[];
}

interface RatePoint {
  at: string;
  rx_rate: number;
  tx_rate: number;
}

export interface NodeMetrics {
  node: string;
  status: string;
  up: boolean;
  report_age_seconds?: number | null;
  rx_rate: number;
  tx_rate: number;
  peers: { peer: string; rx_rate: number; tx_rate: number; handshake_age_seconds: number | null }[];
  tenants: { tenant: string; rx_rate: number; tx_rate: number }[];
  history: RatePoint[];
  peer_history?: Record<string, RatePoint[]> | null;
  tenant_history?: Record<string, RatePoint[]> | null;
}

export interface MetricsView {
  at: string;
  history_seconds: number;
  step_seconds: number;
  nodes: NodeMetrics[];
}

// --- parsing ---------------------------------------------------------------------------------

export function linkKey(a: string, b: string): string {
  return a < b ? `${a}|${b}` : `${b}|${a}`;
}

const BITS = 8;

function epoch(iso: string): number {
  const ms = Date.parse(iso);
  return Number.isNaN(ms) ? Date.now() / 1000 : ms / 1000;
}

const maxOf = (x: number | null, y: number | null): number | null =>
  x === null ? y : y === null ? x : Math.max(x, y);
const minOf = (x: number | null, y: number | null): number | null =>
  x === null ? y : y === null ? x : Math.min(x, y);

/** Adds one end's view of a link (`node` talking to `peer`) to `links`. */
function addLink(
  links: Record<string, LinkSample>,
  node: string,
  peer: string,
  rxBytes: number | null,
  txBytes: number | null,
  age: number | null,
): void {
  if (node === peer) return;
  const key = linkKey(node, peer);
  const [a, b] = node < peer ? [node, peer] : [peer, node];
  const out = txBytes === null ? null : txBytes * BITS; // node -> peer
  const into = rxBytes === null ? null : rxBytes * BITS; // peer -> node
  const [ab, ba] = node === a ? [out, into] : [into, out];
  const prev = links[key];
  links[key] = {
    a,
    b,
    handshakeAge: minOf(prev?.handshakeAge ?? null, age),
    ab: maxOf(prev?.ab ?? null, ab),
    ba: maxOf(prev?.ba ?? null, ba),
  };
}

function addTenant(tenants: Sample["tenants"], name: string, rxBytes: number, txBytes: number): void {
  const prev = tenants[name] ?? { rx: 0, tx: 0 };
  tenants[name] = { rx: (prev.rx ?? 0) + rxBytes * BITS, tx: (prev.tx ?? 0) + txBytes * BITS };
}

/** One `tick` of the monitoring stream. */
export function parseTick(tick: StreamTick): Sample {
  const sample: Sample = { t: epoch(tick.at), nodes: {}, links: {}, tenants: {}, audit: tick.audit ?? [] };
  for (const n of tick.nodes ?? []) {
    // Never reported (just enrolled, or this controller restarted): no data yet, not "down".
    const up = n.up ? true : n.report_age_seconds === null ? null : false;
    sample.nodes[n.node] = { up, rx: n.rx_rate * BITS, tx: n.tx_rate * BITS };
  }
  for (const l of tick.links ?? []) addLink(sample.links, l.node, l.peer, l.rx_rate, l.tx_rate, l.handshake_age_seconds);
  for (const t of tick.tenants ?? []) addTenant(sample.tenants, t.tenant, t.rx_rate, t.tx_rate);
  return sample;
}

/** The latest figures of a metrics view as one sample. */
export function latestOf(view: MetricsView): Sample {
  return parseTick({
    at: view.at,
    nodes: view.nodes,
    links: view.nodes.flatMap((n) => n.peers.map((p) => ({ node: n.node, ...p }))),
    tenants: view.nodes.flatMap((n) => n.tenants.map((t) => ({ node: n.node, ...t }))),
    audit: [],
  });
}

/** The history of a metrics view as samples, one per `step_seconds` bucket, then the latest. */
export function parseMetrics(view: MetricsView): Sample[] {
  const step = view.step_seconds > 0 ? view.step_seconds : 5;
  const buckets = new Map<number, Sample>();
  const bucket = (at: string): Sample => {
    const t = Math.round(epoch(at) / step) * step;
    let s = buckets.get(t);
    if (!s) buckets.set(t, (s = { t, nodes: {}, links: {}, tenants: {}, audit: [] }));
    return s;
  };
  for (const n of view.nodes) {
    for (const p of n.history ?? []) {
      bucket(p.at).nodes[n.node] = { up: null, rx: p.rx_rate * BITS, tx: p.tx_rate * BITS };
    }
    for (const [peer, points] of Object.entries(n.peer_history ?? {})) {
      for (const p of points) addLink(bucket(p.at).links, n.node, peer, p.rx_rate, p.tx_rate, null);
    }
    for (const [tenant, points] of Object.entries(n.tenant_history ?? {})) {
      for (const p of points) addTenant(bucket(p.at).tenants, tenant, p.rx_rate, p.tx_rate);
    }
  }
  const latest = latestOf(view);
  const history = [...buckets.values()].filter((s) => s.t < latest.t).sort((x, y) => x.t - y.t);
  return [...history, latest];
}

export type Health = "ok" | "stale" | "down" | "unknown" | "revoked";

/** Link health from the last handshake: < 3 min green, < 10 min amber, older red. */
export function linkHealth(age: number | null | undefined): Health {
  if (age === null || age === undefined) return "unknown";
  if (age < 180) return "ok";
  if (age < 600) return "stale";
  return "down";
}
