// Topology: hosts as nodes, the WireGuard mesh as edges coloured by health
// (last handshake < 3 min green, < 10 min amber, older red; no data grey),
// revoked hosts red. A tenant filter shows the hosts serving one tenant.
// The graph is updated in place from the live store (watch + stream), so a
// new or revoked host appears without a reload and without re-laying out
// hosts that did not change.

import type cytoscape from "cytoscape";
import { useEffect, useMemo, useRef, useState } from "preact/hooks";
import { Card, ErrorBox, PageHeader, Pill, Table, useTicker } from "../components";
import { ago, bits } from "../format";
import { hostState, tenantsOf, useLive, type HostState, type LiveState } from "../live";
import { linkHealth, linkKey, type Health } from "../metrics";
import type { Node } from "../types";
import { RevokeButton } from "./revoke";

const NODE_COLORS: Record<HostState, string> = {
  up: "#1f9d55",
  down: "#d64545",
  unknown: "#8a94a6",
  revoked: "#b91c1c",
};
const EDGE_COLORS: Record<Health, string> = {
  ok: "#1f9d55",
  stale: "#e3a008",
  down: "#d64545",
  unknown: "#b8c0cc",
  revoked: "#b91c1c",
};

export interface Edge {
  key: string;
  a: string;
  b: string;
  health: Health;
  age: number | null;
  bps: number | null;
}

/** The mesh as the dashboard draws it: every pair of active hosts (full mesh). */
export function meshEdges(nodes: Node[], live: LiveState): Edge[] {
  const active = nodes.filter((n) => n.status !== "revoked");
  const edges: Edge[] = [];
  for (let i = 0; i < active.length; i++) {
    for (let j = i + 1; j < active.length; j++) {
      const key = linkKey(active[i].name, active[j].name);
      const link = live.links[key];
      const [a, b] = key.split("|");
      const down = [active[i], active[j]].some((n) => hostState(n, live) === "down");
      const health = down ? "down" : linkHealth(link?.handshakeAge);
      const bps = link && (link.ab !== null || link.ba !== null) ? (link.ab ?? 0) + (link.ba ?? 0) : null;
      edges.push({ key, a, b, health, age: link?.handshakeAge ?? null, bps });
    }
  }
  return edges;
}

function visibleNodes(live: LiveState, tenant: string): Node[] {
  if (!tenant) return live.nodes;
  const t = live.tenants.find((x) => x.name === tenant);
  const serving = new Set(t?.nodes ?? []);
  return live.nodes.filter((n) => serving.has(n.name));
}

function nodeLabel(n: Node, live: LiveState): string {
  const tenants = tenantsOf(n, live);
  return tenants.length ? `${n.name}\n${tenants.join(", ")}` : n.name;
}

const STYLE: cytoscape.StylesheetJson = [
  {
    selector: "node",
    style: {
      "background-color": "data(color)",
      label: "data(label)",
      color: "#1d2533",
      "font-size": 12,
      "text-wrap": "wrap",
      "text-valign": "bottom",
      "text-margin-y": 6,
      width: 34,
      height: 34,
      "border-width": 3,
      "border-color": "#ffffff",
    },
  },
  { selector: "node.revoked", style: { shape: "octagon", "border-color": "#7f1d1d" } },
  { selector: "node:selected", style: { "border-color": "#2563eb", "border-width": 4 } },
  {
    selector: "edge",
    style: {
      width: "data(width)",
      "line-color": "data(color)",
      "curve-style": "straight",
      label: "data(label)",
      "font-size": 10,
      color: "#445064",
      "text-background-color": "#ffffff",
      "text-background-opacity": 0.8,
      "text-background-padding": "2px",
    },
  },
  { selector: "edge.unknown", style: { "line-style": "dashed" } },
];

function edgeWidth(bps: number | null): number {
  if (!bps || bps < 1000) return 2;
  return Math.min(10, 2 + Math.log10(bps / 1000) * 1.4);
}

/** Brings the cytoscape graph in line with `nodes` and `edges`; true if hosts were added or removed. */
function sync(cy: cytoscape.Core, nodes: Node[], edges: Edge[], live: LiveState): boolean {
  let changed = false;
  const wantNodes = new Set(nodes.map((n) => n.name));
  const wantEdges = new Set(edges.map((e) => e.key));
  cy.batch(() => {
    cy.nodes().forEach((n) => {
      if (!wantNodes.has(n.id())) {
        n.remove();
        changed = true;
      }
    });
    cy.edges().forEach((e) => {
      if (!wantEdges.has(e.id())) e.remove();
    });
    for (const n of nodes) {
      const state = hostState(n, live);
      const data = { id: n.name, label: nodeLabel(n, live), color: NODE_COLORS[state], state };
      const existing = cy.getElementById(n.name);
      if (existing.nonempty()) existing.data(data);
      else {
        cy.add({ group: "nodes", data });
        changed = true;
      }
      cy.getElementById(n.name).classes(state);
    }
    for (const e of edges) {
      const data = {
        id: e.key,
        source: e.a,
        target: e.b,
        color: EDGE_COLORS[e.health],
        width: edgeWidth(e.bps),
        label: e.bps && e.bps >= 1000 ? bits(e.bps) : "",
        health: e.health,
      };
      const existing = cy.getElementById(e.key);
      if (existing.nonempty()) existing.data(data);
      else cy.add({ group: "edges", data });
      cy.getElementById(e.key).classes(e.health);
    }
  });
  return changed;
}

function Graph({ nodes, edges, live, onSelect }: { nodes: Node[]; edges: Edge[]; live: LiveState; onSelect: (name: string | null) => void }) {
  const container = useRef<HTMLDivElement>(null);
  const cyRef = useRef<cytoscape.Core | null>(null);
  const selectRef = useRef(onSelect);
  selectRef.current = onSelect;

  const [ready, setReady] = useState(false);
  const [error, setError] = useState<string | null>(null);

  useEffect(() => {
    // cytoscape is the largest library: loaded only when the topology is shown
    let cy: cytoscape.Core | null = null;
    let gone = false;
    const onResize = () => cy?.resize();
    import("cytoscape")
      .then(({ default: cytoscape }) => {
        if (gone) return;
        cy = cytoscape({
          container: container.current,
          style: STYLE,
              minZoom: 0.3,
          maxZoom: 3,
          boxSelectionEnabled: false,
        });
        const core = cy;
        core.on("tap", "node", (e) => selectRef.current(e.target.id()));
        core.on("tap", (e) => {
          if (e.target === core) selectRef.current(null);
        });
        cyRef.current = core;
        window.addEventListener("resize", onResize);
        setReady(true);
      })
      .catch((err: unknown) => setError(`The graph could not be loaded (${String(err)}); the lists below still work.`));
    return () => {
      gone = true;
      window.removeEventListener("resize", onResize);
      cy?.destroy();
      cyRef.current = null;
    };
  }, []);

  useEffect(() => {
    const cy = cyRef.current;
    if (!cy) return;
    if (sync(cy, nodes, edges, live)) {
      const layout = { name: "circle", animate: false, padding: 40, avoidOverlap: true, startAngle: -Math.PI / 2 };
      cy.layout(layout as cytoscape.LayoutOptions).run();
      cy.fit(undefined, 40);
    }
  }, [nodes, edges, live, ready]);

  if (error) return <ErrorBox error={error} />;

  return <div class="graph" ref={container} data-testid="topology-graph" aria-label="Mesh topology graph" role="img" />;
}

function HostDetails({ node, edges, live }: { node: Node; edges: Edge[]; live: LiveState }) {
  const state = hostState(node, live);
  const mine = edges.filter((e) => e.a === node.name || e.b === node.name);
  const rate = live.health[node.name];
  return (
    <Card title={`Host ${node.name}`} class="details">
      <dl class="facts">
        <dt>State</dt>
        <dd>
          <Pill kind={state === "up" ? "ok" : state === "unknown" ? "muted" : "bad"}>{state}</Pill>
        </dd>
        <dt>Role</dt>
        <dd>{node.role}</dd>
        <dt>Overlay</dt>
        <dd class="mono">
          {node.overlay_ipv6}
          <br />
          {node.overlay_ipv4}
        </dd>
        <dt>Endpoints</dt>
        <dd class="mono">{node.endpoints.join(", ") || "—"}</dd>
        <dt>Tenants</dt>
        <dd>{tenantsOf(node, live).join(", ") || "—"}</dd>
        <dt>Traffic</dt>
        <dd>
          in {bits(rate?.rx)} · out {bits(rate?.tx)}
        </dd>
      </dl>
      {mine.length > 0 && (
        <Table label={`Links of ${node.name}`}>
          <thead>
            <tr>
              <th>Peer</th>
              <th>Handshake</th>
              <th>Traffic</th>
            </tr>
          </thead>
          <tbody>
            {mine.map((e) => (
              <tr key={e.key}>
                <td>{e.a === node.name ? e.b : e.a}</td>
                <td>
                  <Pill kind={e.health}>{ago(e.age)}</Pill>
                </td>
                <td>{bits(e.bps)}</td>
              </tr>
            ))}
          </tbody>
        </Table>
      )}
      {node.status !== "revoked" && <RevokeButton name={node.name} />}
    </Card>
  );
}

export function Topology() {
  const live = useLive();
  useTicker(5000);
  const [tenant, setTenant] = useState("");
  const [selected, setSelected] = useState<string | null>(null);
  const nodes = useMemo(() => visibleNodes(live, tenant), [live.nodes, live.tenants, tenant]);
  const edges = useMemo(() => meshEdges(nodes, live), [nodes, live.links, live.health]);
  const node = live.nodes.find((n) => n.name === selected) ?? null;
  return (
    <>
      <PageHeader title="Topology">
        <label class="inline">
          Tenant{" "}
          <select value={tenant} onChange={(e) => setTenant((e.target as HTMLSelectElement).value)} data-testid="tenant-filter">
            <option value="">All hosts</option>
            {live.tenants.map((t) => (
              <option key={t.name} value={t.name}>
                {t.name} (VNI {t.vni})
              </option>
            ))}
          </select>
        </label>
      </PageHeader>
      <ErrorBox error={live.loadError} />
      <div class="topology">
        <Card class="graph-card">
          <Graph nodes={nodes} edges={edges} live={live} onSelect={setSelected} />
          <ul class="legend">
            <li>
              <span class="swatch" style={{ background: EDGE_COLORS.ok }} /> handshake &lt; 3 min
            </li>
            <li>
              <span class="swatch" style={{ background: EDGE_COLORS.stale }} /> 3–10 min
            </li>
            <li>
              <span class="swatch" style={{ background: EDGE_COLORS.down }} /> older / host down / revoked
            </li>
            <li>
              <span class="swatch" style={{ background: EDGE_COLORS.unknown }} /> no data
            </li>
          </ul>
        </Card>
        <div class="side">
          {node ? (
            <HostDetails node={node} edges={edges} live={live} />
          ) : (
            <p class="muted">Select a host in the graph or the list for its details.</p>
          )}
          <Card title="Hosts">
            <ul class="host-list" data-testid="topology-hosts">
              {nodes.map((n) => {
                const state = hostState(n, live);
                return (
                  <li key={n.name} data-node={n.name} data-state={state}>
                    <button type="button" class="link" onClick={() => setSelected(n.name)}>
                      <span class="swatch round" style={{ background: NODE_COLORS[state] }} /> {n.name}
                    </button>{" "}
                    <Pill kind={state === "up" ? "ok" : state === "unknown" ? "muted" : "bad"}>{state}</Pill>
                  </li>
                );
              })}
              {!nodes.length && <li class="muted">No hosts{tenant ? ` serve tenant ${tenant}` : ""}.</li>}
            </ul>
          </Card>
        </div>
      </div>
      <Card title="Links">
        <Table label="Mesh links">
          <thead>
            <tr>
              <th>Link</th>
              <th>Health</th>
              <th>Last handshake</th>
              <th>Traffic</th>
            </tr>
          </thead>
          <tbody data-testid="topology-links">
            {edges.map((e) => (
              <tr key={e.key} data-link={e.key} data-health={e.health}>
                <td>
                  {e.a} ↔ {e.b}
                </td>
                <td>
                  <Pill kind={e.health}>{e.health}</Pill>
                </td>
                <td>{ago(e.age)}</td>
                <td>{bits(e.bps)}</td>
              </tr>
            ))}
          </tbody>
        </Table>
      </Card>
    </>
  );
}
