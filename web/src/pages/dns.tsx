// DNS: the network's zone as the authoritative server serves it
// (GET /api/v1/dns/records, read back by zone transfer), with a filter.

import { useState } from "preact/hooks";
import { api } from "../api";
import { Card, ErrorBox, Loading, PageHeader, Table, useAsync } from "../components";
import type { DnsZoneView } from "../types";

export interface DnsRecord {
  name: string;
  ttl: string;
  type: string;
  data: string;
}

const CLASSES = new Set(["IN", "CH", "HS"]);

/** One master-file line ("name ttl IN type data…") as columns. */
export function parseRecord(line: string): DnsRecord {
  const parts = line.trim().split(/\s+/);
  const name = parts.shift() ?? "";
  let ttl = "";
  if (parts[0] && /^\d+$/.test(parts[0])) ttl = parts.shift() ?? "";
  if (parts[0] && CLASSES.has(parts[0].toUpperCase())) parts.shift();
  const type = parts.shift() ?? "";
  return { name, ttl, type, data: parts.join(" ") };
}

export function Dns() {
  const zone = useAsync((signal) => api<DnsZoneView>("/api/v1/dns/records", { signal }), []);
  const [filter, setFilter] = useState("");
  if (zone.loading && !zone.data) return <Loading what="the DNS zone" />;
  const records = (zone.data?.records ?? []).map(parseRecord);
  const needle = filter.trim().toLowerCase();
  const shown = needle
    ? records.filter((r) => `${r.name} ${r.type} ${r.data}`.toLowerCase().includes(needle))
    : records;
  return (
    <>
      <PageHeader title="DNS records">
        <button type="button" onClick={zone.reload}>
          Refresh
        </button>
      </PageHeader>
      <ErrorBox error={zone.error} onRetry={zone.reload} />
      {zone.data && (
        <p class="muted">
          Zone <strong>{zone.data.zone}</strong> served by the {zone.data.backend} server at{" "}
          <span class="mono">
            {zone.data.server}:{zone.data.port}
          </span>
          .
        </p>
      )}
      <Card>
        <label class="inline">
          Filter{" "}
          <input type="search" placeholder="name, type or data" value={filter} onInput={(e) => setFilter((e.target as HTMLInputElement).value)} />
        </label>
        <Table label="DNS records">
          <thead>
            <tr>
              <th>Name</th>
              <th>TTL</th>
              <th>Type</th>
              <th>Data</th>
            </tr>
          </thead>
          <tbody data-testid="dns-records">
            {shown.map((r, i) => (
              <tr key={i}>
                <td class="mono">{r.name}</td>
                <td>{r.ttl}</td>
                <td>{r.type}</td>
                <td class="mono wrap">{r.data}</td>
              </tr>
            ))}
          </tbody>
        </Table>
        {zone.data && !shown.length && <p class="muted">No record matches.</p>}
      </Card>
    </>
  );
}
