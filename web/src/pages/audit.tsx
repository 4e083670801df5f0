// Audit log viewer. The controller does the filtering (GET /api/v1/monitoring/logs
// with q / node / actor / action / outcome / since) and pages by sequence number
// (`after`, `next_after`). Without filters the page opens on the latest events
// and can load earlier ones; with filters it walks the matches from the start.
// "Verify hash chain" asks the controller to check the whole chain (verify=true).

import { useEffect, useState } from "preact/hooks";
import { api, describe } from "../api";
import { Card, ErrorBox, PageHeader, Pill, Table } from "../components";
import { datetime } from "../format";
import { getLive, refreshSecurity } from "../live";
import type { AuditEvent, AuditPage } from "../types";

const PAGE = 200;

export interface Filters {
  q: string;
  node: string;
  actor: string;
  action: string;
  outcome: string;
  since: string; // datetime-local value, local time
}

const EMPTY: Filters = { q: "", node: "", actor: "", action: "", outcome: "", since: "" };

/** The query string the controller gets for `filters` (a local time is sent as UTC ISO 8601). */
export function filterQuery(f: Filters): Record<string, string> {
  return {
    q: f.q.trim(),
    node: f.node.trim(),
    actor: f.actor.trim(),
    action: f.action.trim(),
    outcome: f.outcome,
    since: f.since ? new Date(f.since).toISOString() : "",
  };
}

const isEmpty = (f: Filters) => Object.values(filterQuery(f)).every((v) => v === "");

export function Audit() {
  const [filters, setFilters] = useState<Filters>(EMPTY);
  const [events, setEvents] = useState<AuditEvent[] | null>(null);
  const [next, setNext] = useState(0); // filtered: where the next page of matches starts
  const [more, setMore] = useState(false);
  const [earliest, setEarliest] = useState(0); // unfiltered: the `after` of the earliest page loaded
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const [chain, setChain] = useState<string | null>(null);

  const fetchPage = (using: Filters, after: number) =>
    api<AuditPage>("/api/v1/monitoring/logs", { query: { ...filterQuery(using), after, limit: PAGE } });

  const run = async (work: () => Promise<void>) => {
    setBusy(true);
    setError(null);
    try {
      await work();
    } catch (err) {
      setError(describe(err));
    } finally {
      setBusy(false);
    }
  };

  const search = (using: Filters = filters) =>
    run(async () => {
      // Unfiltered: the latest page (sequence numbers are dense); filtered: matches from the start.
      if (isEmpty(using) && !getLive().security) await refreshSecurity().catch(() => undefined);
      const latest = isEmpty(using) ? Math.max(0, (getLive().security?.audit_events ?? 0) - PAGE) : 0;
      const page = await fetchPage(using, latest);
      setEvents(page.events);
      setNext(page.next_after);
      setMore(!isEmpty(using) && page.events.length === PAGE);
      setEarliest(isEmpty(using) ? latest : 0);
    });

  const loadMore = () =>
    run(async () => {
      const page = await fetchPage(filters, next);
      setEvents((prev) => [...(prev ?? []), ...page.events]);
      setNext(page.next_after);
      setMore(page.events.length === PAGE);
    });

  const loadEarlier = () =>
    run(async () => {
      const from = Math.max(0, earliest - PAGE);
      const page = await fetchPage(EMPTY, from);
      const known = new Set((events ?? []).map((e) => e.seq));
      setEvents([...page.events.filter((e) => !known.has(e.seq)), ...(events ?? [])]);
      setEarliest(from);
    });

  const verify = async () => {
    setChain("checking…");
    try {
      const page = await api<AuditPage>("/api/v1/monitoring/logs", { query: { after: 0, limit: 1, verify: true } });
      setChain(page.chain_ok ? "intact: every entry chains to the one before" : `broken at entry ${page.first_bad_seq}`);
    } catch (err) {
      setChain(null);
      setError(describe(err));
    }
  };

  useEffect(() => {
    void search(EMPTY);
  }, []);

  const field = (name: keyof Filters) => ({
    value: filters[name],
    onInput: (e: Event) => setFilters({ ...filters, [name]: (e.target as HTMLInputElement).value }),
  });
  const shown = [...(events ?? [])].reverse(); // newest first

  return (
    <>
      <PageHeader title="Audit log">
        <button type="button" onClick={verify}>
          Verify hash chain
        </button>
      </PageHeader>
      {chain && (
        <p class="notice info" data-testid="chain-state">
          Hash chain: {chain}
        </p>
      )}
      <Card>
        <form
          class="filters"
          onSubmit={(e) => {
            e.preventDefault();
            void search();
          }}
        >
          <label>
            Search <input type="search" placeholder="any text" {...field("q")} data-testid="audit-q" />
          </label>
          <label>
            Host <input placeholder="e.g. h2" {...field("node")} />
          </label>
          <label>
            Actor <input placeholder="e.g. admin" {...field("actor")} />
          </label>
          <label>
            Action <input placeholder="e.g. node.revoke" {...field("action")} data-testid="audit-action" />
          </label>
          <label>
            Outcome{" "}
            <select
              value={filters.outcome}
              onChange={(e) => setFilters({ ...filters, outcome: (e.target as HTMLSelectElement).value })}
            >
              <option value="">any</option>
              <option value="ok">ok</option>
              <option value="refused">refused</option>
            </select>
          </label>
          <label>
            Since <input type="datetime-local" {...field("since")} />
          </label>
          <div class="row">
            <button type="submit" class="primary" disabled={busy}>
              Search
            </button>
            <button
              type="button"
              onClick={() => {
                setFilters(EMPTY);
                void search(EMPTY);
              }}
            >
              Clear
            </button>
          </div>
        </form>
      </Card>
      <ErrorBox error={error} onRetry={() => void search()} />
      <Card title={events ? `${events.length}${more ? "+" : ""} ${isEmpty(filters) ? "latest" : "matching"} events, newest first` : "Events"}>
        <Table label="Audit events">
          <thead>
            <tr>
              <th>#</th>
              <th>When (UTC)</th>
              <th>Actor</th>
              <th>Action</th>
              <th>Target</th>
              <th>Outcome</th>
              <th>Detail</th>
            </tr>
          </thead>
          <tbody data-testid="audit-events">
            {shown.map((e) => (
              <tr key={e.seq} data-action={e.action}>
                <td>{e.seq}</td>
                <td class="nowrap">{datetime(e.at)}</td>
                <td>{e.actor}</td>
                <td>{e.action}</td>
                <td>{e.target}</td>
                <td>
                  <Pill kind={e.outcome === "ok" ? "ok" : "bad"}>{e.outcome}</Pill>
                </td>
                <td class="detail">{e.detail}</td>
              </tr>
            ))}
          </tbody>
        </Table>
        {events && events.length === 0 && <p class="muted">No event matches.</p>}
        <div class="row">
          {more && (
            <button type="button" disabled={busy} onClick={() => void loadMore()}>
              Load more matches
            </button>
          )}
          {isEmpty(filters) && earliest > 0 && events !== null && (
            <button type="button" disabled={busy} onClick={() => void loadEarlier()}>
              Load earlier events
            </button>
          )}
        </div>
      </Card>
    </>
  );
}
