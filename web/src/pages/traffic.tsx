// Live traffic: overlay throughput per host, per mesh link and per tenant,
// drawn with uPlot from the live store's history (the monitoring stream adds
// one sample a second; the first minutes come from /monitoring/metrics).

import uPlot from "uplot";
import "uplot/dist/uPlot.min.css";
import { useEffect, useMemo, useRef, useState } from "preact/hooks";
import { Card, Notice, PageHeader, Table } from "../components";
import { bits } from "../format";
import { HISTORY_SECONDS, useLive, type LiveState } from "../live";
import type { Sample } from "../metrics";

type View = "hosts" | "links" | "tenants";

interface Series {
  id: string;
  label: string;
  value: (s: Sample) => { in: number | null; out: number | null };
}

const PALETTE = ["#2563eb", "#1f9d55", "#e3a008", "#d64545", "#7c3aed", "#0891b2", "#db2777", "#65a30d", "#ea580c", "#475569"];

function seriesFor(view: View, live: LiveState): Series[] {
  const latest = live.history[live.history.length - 1];
  if (view === "hosts") {
    const names = new Set([...live.nodes.map((n) => n.name), ...live.history.flatMap((s) => Object.keys(s.nodes))]);
    return [...names].sort().map((name) => ({
      id: name,
      label: name,
      value: (s) => ({ in: s.nodes[name]?.rx ?? null, out: s.nodes[name]?.tx ?? null }),
    }));
  }
  if (view === "links") {
    const keys = new Set(live.history.flatMap((s) => Object.keys(s.links)));
    return [...keys].sort().map((key) => {
      const [a, b] = key.split("|");
      return {
        id: key,
        label: `${a}↔${b}`,
        value: (s) => ({ in: s.links[key]?.ba ?? null, out: s.links[key]?.ab ?? null }),
      };
    });
  }
  const names = new Set([...live.tenants.map((t) => t.name), ...Object.keys(latest?.tenants ?? {})]);
  return [...names].sort().map((name) => ({
    id: name,
    label: name,
    value: (s) => ({ in: s.tenants[name]?.rx ?? null, out: s.tenants[name]?.tx ?? null }),
  }));
}

const total = (v: { in: number | null; out: number | null }): number | null =>
  v.in === null && v.out === null ? null : (v.in ?? 0) + (v.out ?? 0);

function Chart({ series, history, title }: { series: Series[]; history: Sample[]; title: string }) {
  const box = useRef<HTMLDivElement>(null);
  const plot = useRef<uPlot | null>(null);
  const shape = series.map((s) => s.id).join(",");

  const data = useMemo((): uPlot.AlignedData => {
    const xs = history.map((s) => s.t);
    return [xs, ...series.map((se) => history.map((s) => total(se.value(s))))];
  }, [history, shape]);

  useEffect(() => {
    if (!box.current) return;
    const width = box.current.clientWidth || 600;
    const opts: uPlot.Options = {
      title,
      width,
      height: 260,
      series: [
        {},
        ...series.map((s, i) => ({
          label: s.label,
          stroke: PALETTE[i % PALETTE.length],
          width: 2,
          value: (_u: uPlot, v: number | null) => bits(v),
          spanGaps: false,
        })),
      ],
      axes: [{}, { values: (_u, ticks) => ticks.map((t) => bits(t)), size: 80 }],
      scales: {
        // at least the last minute, so that a few seconds of samples do not fill the whole width
        x: { time: true, range: (_u, min, max) => [Math.min(min, max - 60), max] },
        y: { range: (_u, _min, max) => [0, Math.max(max * 1.1, 1000)] },
      },
      legend: { live: true },
      cursor: { drag: { x: false, y: false } },
    };
    plot.current = new uPlot(opts, data, box.current);
    const onResize = () => plot.current?.setSize({ width: box.current?.clientWidth || width, height: 260 });
    window.addEventListener("resize", onResize);
    return () => {
      window.removeEventListener("resize", onResize);
      plot.current?.destroy();
      plot.current = null;
    };
  }, [shape, title]);

  useEffect(() => {
    plot.current?.setData(data);
  }, [data]);

  return <div class="chart" ref={box} data-testid="traffic-chart" />;
}

export function Traffic() {
  const live = useLive();
  const [view, setView] = useState<View>("hosts");
  const series = useMemo(() => seriesFor(view, live), [view, live.nodes, live.tenants, live.history]);
  const latest = live.history[live.history.length - 1];
  const views: [View, string][] = [
    ["hosts", "Per host"],
    ["links", "Per link"],
    ["tenants", "Per tenant"],
  ];
  return (
    <>
      <PageHeader title="Traffic" />
      <div class="tabs" role="tablist">
        {views.map(([id, label]) => (
          <button
            key={id}
            type="button"
            role="tab"
            aria-selected={view === id}
            class={view === id ? "active" : ""}
            onClick={() => setView(id)}
            data-testid={`traffic-${id}`}
          >
            {label}
          </button>
        ))}
      </div>
      {live.stream !== "live" && (
        <Notice kind="warn">
          Live data: {live.stream}
          {live.streamError ? ` — ${live.streamError}` : ""}
        </Notice>
      )}
      <Card>
        {series.length === 0 ? (
          <p class="muted">
            {view === "tenants"
              ? "No per-tenant counters yet: the controller reports them once tenants carry traffic."
              : "No samples yet: the controller sends one a second once agents report."}
          </p>
        ) : (
          <Chart
            key={view}
            series={series}
            history={live.history}
            title={`Overlay throughput (in + out), live — up to the last ${HISTORY_SECONDS / 60} min`}
          />
        )}
      </Card>
      <Card title="Now">
        <Table label="Current throughput">
          <thead>
            <tr>
              <th>{view === "hosts" ? "Host" : view === "links" ? "Link" : "Tenant"}</th>
              <th>{view === "links" ? "a → b" : "In"}</th>
              <th>{view === "links" ? "b → a" : "Out"}</th>
              <th>Total</th>
            </tr>
          </thead>
          <tbody data-testid="traffic-now">
            {series.map((s) => {
              const v = latest ? s.value(latest) : { in: null, out: null };
              const [first, second] = view === "links" ? [v.out, v.in] : [v.in, v.out];
              const sum = total(v);
              return (
                <tr key={s.id} data-series={s.id} data-bps={sum ?? ""}>
                  <td>{s.label}</td>
                  <td>{bits(first)}</td>
                  <td>{bits(second)}</td>
                  <td>{bits(sum)}</td>
                </tr>
              );
            })}
          </tbody>
        </Table>
      </Card>
    </>
  );
}
