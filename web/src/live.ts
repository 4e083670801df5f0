// The dashboard's live state: one store every page reads.
//
// Two feeds keep it current without reloading:
// * the change feed, GET /api/v1/watch (long-poll with revision numbers, the
//   same one agents use): hosts and tenants appearing, changing, being revoked;
// * the monitoring stream, GET /api/v1/monitoring/stream (server-sent events,
//   one JSON sample a second): hosts up/down, per-link handshake age and rates,
//   new audit events. Before it connects, the recent history comes from
//   GET /api/v1/monitoring/metrics so the graphs do not start empty.
// Each feed retries with backoff on its own; what is wrong is shown, not hidden.

import { useEffect, useState } from "preact/hooks";
import { api, describe, ApiError } from "./api";
import {
  parseMetrics,
  parseTick,
  type LinkSample,
  type MetricsView,
  type NodeSample,
  type Sample,
  type StreamTick,
} from "./metrics";
import { readStream } from "./sse";
import type { AuditEvent, Node, SecurityStatus, Tenant, WatchResult } from "./types";

export const HISTORY_SECONDS = 300;
const MAX_RECENT_AUDIT = 50;

export type FeedState = "off" | "connecting" | "live" | "retrying" | "unavailable";

export interface LiveState {
  nodes: Node[];
  nodesLoaded: boolean;
  tenants: Tenant[];
  security: SecurityStatus | null;
  health: Record<string, NodeSample>; // latest per host
  links: Record<string, LinkSample>; // latest per link
  history: Sample[]; // oldest first, HISTORY_SECONDS long
  recentAudit: AuditEvent[]; // newest first, from the stream
  stream: FeedState;
  streamError: string | null;
  watch: FeedState;
  watchError: string | null;
  loadError: string | null;
  revision: number;
}

const initial = (): LiveState => ({
  nodes: [],
  nodesLoaded: false,
  tenants: [],
  security: null,
  health: {},
  links: {},
  history: [],
  recentAudit: [],
  stream: "off",
  streamError: null,
  watch: "off",
  watchError: null,
  loadError: null,
  revision: 0,
});

let state: LiveState = initial();
const listeners = new Set<() => void>();

export function getLive(): LiveState {
  return state;
}

function update(patch: Partial<LiveState> | ((s: LiveState) => Partial<LiveState>)): void {
  state = { ...state, ...(typeof patch === "function" ? patch(state) : patch) };
  listeners.forEach((l) => l());
}

/** Re-renders the component when the store changes. */
export function useLive(): LiveState {
  const [, setTick] = useState(0);
  useEffect(() => {
    const listener = () => setTick((t) => t + 1);
    listeners.add(listener);
    return () => {
      listeners.delete(listener);
    };
  }, []);
  return state;
}

// --- loading -------------------------------------------------------------------------

export async function refreshNodes(): Promise<void> {
  const nodes = await api<Node[]>("/api/v1/nodes");
  update({ nodes: [...nodes].sort(byName), nodesLoaded: true });
}

export async function refreshTenants(): Promise<void> {
  update({ tenants: await api<Tenant[]>("/api/v1/tenants") });
}

export async function refreshSecurity(): Promise<void> {
  update({ security: await api<SecurityStatus>("/api/v1/security/status") });
}

const byName = (x: { name: string }, y: { name: string }) =>
  x.name.localeCompare(y.name, undefined, { numeric: true });

async function loadAll(): Promise<void> {
  const results = await Promise.allSettled([refreshNodes(), refreshTenants(), refreshSecurity()]);
  const failed = results.find((r): r is PromiseRejectedResult => r.status === "rejected");
  update({ loadError: failed ? describe(failed.reason) : null });
}

// --- samples -------------------------------------------------------------------------

export function addSamples(samples: Sample[]): void {
  if (!samples.length) return;
  update((s) => {
    const history = [...s.history];
    for (const sample of samples) {
      const last = history[history.length - 1];
      if (last && sample.t <= last.t) {
        if (sample.t === last.t) history[history.length - 1] = sample;
        continue;
      }
      history.push(sample);
    }
    const newest = history.length ? history[history.length - 1].t : 0;
    const kept = history.filter((x) => x.t > newest - HISTORY_SECONDS);
    const latest = samples[samples.length - 1];
    const health = { ...s.health };
    for (const [name, n] of Object.entries(latest.nodes)) {
      health[name] = n;
    }
    const links = Object.keys(latest.links).length ? latest.links : s.links;
    const fresh = samples.flatMap((x) => x.audit);
    const known = new Set(s.recentAudit.map((e) => e.seq));
    const recentAudit = [...fresh.filter((e) => !known.has(e.seq)).reverse(), ...s.recentAudit].slice(
      0,
      MAX_RECENT_AUDIT,
    );
    return { history: kept, health, links, recentAudit };
  });
  if (samples.some((x) => x.audit.length)) void refreshSecurity().catch(() => undefined);
}

async function loadHistory(): Promise<boolean> {
  try {
    const view = await api<MetricsView>("/api/v1/monitoring/metrics", { query: { detail: true } });
    addSamples(parseMetrics(view));
    return true;
  } catch (err) {
    if (err instanceof ApiError && [404, 405].includes(err.status)) return false;
    throw err;
  }
}

// --- the feeds -----------------------------------------------------------------------

let running: AbortController | null = null;

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = window.setTimeout(resolve, ms);
    signal.addEventListener("abort", () => {
      window.clearTimeout(timer);
      resolve();
    });
  });
}

const NODE_KINDS = new Set(["node", "certificate"]);

async function watchLoop(signal: AbortSignal): Promise<void> {
  let backoff = 500;
  while (!signal.aborted) {
    try {
      update({ watch: "live" });
      const result = await api<WatchResult>("/api/v1/watch", {
        query: { since: state.revision, timeout: 25 },
        signal,
      });
      backoff = 500;
      const kinds = new Set(result.changes.map((c) => c.kind));
      update({ revision: result.revision, watchError: null });
      const work: Promise<void>[] = [];
      if ([...kinds].some((k) => NODE_KINDS.has(k))) work.push(refreshNodes(), refreshSecurity());
      if (kinds.has("tenant")) work.push(refreshTenants());
      await Promise.allSettled(work);
    } catch (err) {
      if (signal.aborted) return;
      const permanent = err instanceof ApiError && [401, 403, 404].includes(err.status);
      update({ watch: permanent ? "unavailable" : "retrying", watchError: describe(err) });
      if (permanent) return;
      await sleep(backoff, signal);
      backoff = Math.min(backoff * 2, 10_000);
    }
  }
}

async function streamLoop(signal: AbortSignal): Promise<void> {
  let backoff = 1000;
  let haveHistory = false;
  while (!signal.aborted) {
    let permanent = false;
    update({ stream: state.stream === "live" ? "retrying" : "connecting" });
    if (!haveHistory) {
      haveHistory = await loadHistory().catch(() => false);
    }
    // Resume the audit feed after the last event seen (the controller starts at "now" otherwise).
    const lastSeq = state.recentAudit[0]?.seq;
    const path = lastSeq === undefined ? "/api/v1/monitoring/stream" : `/api/v1/monitoring/stream?after=${lastSeq}`;
    await readStream(
      path,
      {
        onOpen: () => {
          backoff = 1000;
          update({ stream: "live", streamError: null });
        },
        onEvent: (event) => {
          let data: unknown;
          try {
            data = JSON.parse(event.data);
          } catch {
            return; // not JSON: nothing this dashboard knows
          }
          if (event.event === "tick") addSamples([parseTick(data as StreamTick)]);
          else if (event.event === "end") {
            const body = data as { detail?: string };
            update({ streamError: `the controller ended the stream: ${body.detail ?? "no reason given"}` });
          }
        },
        onError: (message, isPermanent) => {
          permanent = isPermanent;
          update({ stream: isPermanent ? "unavailable" : "retrying", streamError: state.streamError ?? message });
        },
      },
      signal,
    );
    if (signal.aborted) return;
    if (permanent) {
      // No stream on this controller: poll the metrics snapshot instead, if there is one.
      if (!(await pollMetrics(signal))) return;
      continue;
    }
    await sleep(backoff, signal);
    backoff = Math.min(backoff * 2, 10_000);
  }
}

/** Fallback when the stream is missing: GET /api/v1/monitoring/metrics every 2 s. */
async function pollMetrics(signal: AbortSignal): Promise<boolean> {
  let any = false;
  while (!signal.aborted) {
    try {
      if (!(await loadHistory())) return any;
      any = true;
      update({ stream: "live", streamError: "live stream unavailable; polling the metrics every 2 s" });
    } catch (err) {
      update({ stream: "retrying", streamError: describe(err) });
    }
    await sleep(2000, signal);
  }
  return any;
}

/** Start (or restart) loading and both feeds; call after signing in. */
export function startLive(): void {
  stopLive();
  const controller = new AbortController();
  running = controller;
  void (async () => {
    await loadAll();
    if (controller.signal.aborted) return;
    void watchLoop(controller.signal);
    void streamLoop(controller.signal);
  })();
}

export function stopLive(): void {
  running?.abort();
  running = null;
  state = initial();
  listeners.forEach((l) => l());
}

// --- derived views ---------------------------------------------------------------------

export type HostState = "up" | "down" | "unknown" | "revoked";

/** The tenants a host serves: attachments are kept on the tenant (`Tenant.nodes`) only,
 * which the feed refreshes on every attach and detach. */
export function tenantsOf(node: Node, s: LiveState = state): string[] {
  return s.tenants.filter((t) => t.nodes.includes(node.name)).map((t) => t.name).sort();
}

export function hostState(node: Node, s: LiveState = state): HostState {
  if (node.status === "revoked") return "revoked";
  const up = s.health[node.name]?.up;
  return up === true ? "up" : up === false ? "down" : "unknown";
}
