// Guided onboarding: choose the host's name, role, tenants and token lifetime;
// POST /api/v1/tokens creates a single-use token bound to them and returns the
// signed profile; the page shows it as YAML (download), as a QR code (for a
// phone or a console camera), the exact command to run on the host, and
// waits for the host to appear.

import QRCode from "qrcode";
import { useEffect, useState } from "preact/hooks";
import { api, describe } from "../api";
import { Card, ErrorBox, PageHeader, Pill } from "../components";
import { datetime, parseDuration } from "../format";
import { hostState, useLive } from "../live";
import type { Role, TokenCreated } from "../types";
import { profileYaml } from "../yaml";

const NAME_RE = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;
const TTLS = ["15m", "1h", "8h", "1d", "7d"];

interface Form {
  name: string;
  role: Role;
  ttl: string;
  tenants: string[];
  attributes: string;
}

/** Problems with the form, in words, before anything is sent. */
export function check(form: Form): string | null {
  if (!NAME_RE.test(form.name)) {
    return "Host name: use 1–63 lowercase letters, digits or '-', starting and ending with a letter or digit.";
  }
  const ttl = parseDuration(form.ttl);
  if (ttl === null || ttl < 60) return "Token lifetime: write it as 15m, 1h or 7d (at least 1 minute).";
  for (const line of form.attributes.split("\n").filter((l) => l.trim())) {
    if (!line.includes("=")) return `Attribute "${line.trim()}": write KEY=VALUE, one a line.`;
  }
  return null;
}

function attributes(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of text.split("\n")) {
    const at = line.indexOf("=");
    if (at > 0) out[line.slice(0, at).trim()] = line.slice(at + 1).trim();
  }
  return out;
}

function download(filename: string, text: string): void {
  const blob = new Blob([text], { type: "application/yaml" });
  const href = URL.createObjectURL(blob);
  const a = document.createElement("a");
  a.href = href;
  a.download = filename;
  document.body.appendChild(a);
  a.click();
  a.remove();
  window.setTimeout(() => URL.revokeObjectURL(href), 1000);
}

function Qr({ text }: { text: string }) {
  const [src, setSrc] = useState<string | null>(null);
  const [error, setError] = useState<string | null>(null);
  useEffect(() => {
    QRCode.toDataURL(text, { errorCorrectionLevel: "L", margin: 2, width: 320 })
      .then(setSrc)
      .catch((err: unknown) => setError(`The profile is too large for a QR code (${describe(err)}); use the download.`));
  }, [text]);
  if (error) return <p class="muted">{error}</p>;
  return src ? <img class="qr" src={src} alt="QR code of the profile YAML" data-testid="profile-qr" /> : null;
}

function Result({ created, yaml }: { created: TokenCreated; yaml: string }) {
  const live = useLive();
  const [copied, setCopied] = useState(false);
  const file = `${created.node_name}.profile.yaml`;
  const command = `sudo ztos agent run --profile ${file}`;
  const node = live.nodes.find((n) => n.name === created.node_name);
  const copy = async () => {
    try {
      await navigator.clipboard.writeText(command);
      setCopied(true);
    } catch {
      setCopied(false);
    }
  };
  return (
    <>
      <Card title="2. Put the profile on the host">
        <p>
          Token <span class="mono">{created.id}</span> for {created.role} <strong>{created.node_name}</strong>, single use,
          valid until {datetime(created.expires_at)}. The profile holds its secret: treat it like a password.
        </p>
        <div class="profile">
          <div>
            <pre class="yaml" data-testid="profile-yaml">
              {yaml}
            </pre>
            <button type="button" class="primary" onClick={() => download(file, yaml)} data-testid="download-profile">
              Download {file}
            </button>
          </div>
          <div class="qr-box">
            <Qr text={yaml} />
            <p class="muted small">Scan to copy the profile to the host (it is the same YAML).</p>
          </div>
        </div>
      </Card>
      <Card title="3. Start the agent on the host">
        <pre class="command" data-testid="agent-command">
          {command}
        </pre>
        <button type="button" onClick={copy}>
          {copied ? "Copied" : "Copy command"}
        </button>
        <p class="muted small">
          The agent generates its keys on the host (they never leave it), enrols with the token, and joins the mesh.
        </p>
      </Card>
      <Card title="4. Wait for the host to join">
        {node ? (
          <p data-testid="enrolled">
            <Pill kind="ok">enrolled</Pill> {node.name} joined with overlay address{" "}
            <span class="mono">{node.overlay_ipv6}</span> (state: {hostState(node, live)}).{" "}
            <a href="#/topology">See it on the topology →</a>
          </p>
        ) : (
          <p class="muted" data-testid="waiting">
            Waiting for {created.node_name} to enrol… (this page updates by itself)
          </p>
        )}
      </Card>
    </>
  );
}

export function Onboard() {
  const live = useLive();
  const [form, setForm] = useState<Form>({ name: "", role: "node", ttl: "1h", tenants: [], attributes: "" });
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const [created, setCreated] = useState<{ token: TokenCreated; yaml: string } | null>(null);

  const submit = async (e: Event) => {
    e.preventDefault();
    const problem = check(form);
    setError(problem);
    if (problem) return;
    setBusy(true);
    try {
      const token = await api<TokenCreated>("/api/v1/tokens", {
        body: {
          node_name: form.name,
          role: form.role,
          tenants: form.tenants,
          attributes: attributes(form.attributes),
          ttl_seconds: parseDuration(form.ttl),
        },
      });
      setCreated({ token, yaml: profileYaml(token.profile) });
    } catch (err) {
      setError(describe(err));
    } finally {
      setBusy(false);
    }
  };

  const set = (patch: Partial<Form>) => setForm({ ...form, ...patch });
  const taken = live.nodes.some((n) => n.name === form.name);

  return (
    <>
      <PageHeader title="Add a host">
        {created && (
          <button type="button" onClick={() => setCreated(null)}>
            Start over
          </button>
        )}
      </PageHeader>
      <Card title="1. Describe the host">
        <form class="onboard-form" onSubmit={submit}>
          <label>
            Host name
            <input
              name="node_name"
              value={form.name}
              placeholder="e.g. web-3"
              spellcheck={false}
              onInput={(e) => set({ name: (e.target as HTMLInputElement).value.trim().toLowerCase() })}
              disabled={busy || created !== null}
              data-testid="onboard-name"
            />
          </label>
          {taken && <p class="notice warn">A host named {form.name} is already enrolled; the controller will refuse it.</p>}
          <label>
            Role
            <select
              value={form.role}
              onChange={(e) => set({ role: (e.target as HTMLSelectElement).value as Role })}
              disabled={busy || created !== null}
            >
              <option value="node">node (a host running the agent)</option>
              <option value="operator">operator</option>
              <option value="auditor">auditor</option>
              <option value="admin">admin</option>
            </select>
          </label>
          <label>
            Token lifetime
            <input
              list="ttls"
              value={form.ttl}
              onInput={(e) => set({ ttl: (e.target as HTMLInputElement).value })}
              disabled={busy || created !== null}
              data-testid="onboard-ttl"
            />
            <datalist id="ttls">
              {TTLS.map((t) => (
                <option key={t} value={t} />
              ))}
            </datalist>
          </label>
          {live.tenants.length > 0 && (
            <fieldset disabled={busy || created !== null}>
              <legend>Tenants</legend>
              {live.tenants.map((t) => (
                <label key={t.name} class="check">
                  <input
                    type="checkbox"
                    checked={form.tenants.includes(t.name)}
                    onChange={(e) =>
                      set({
                        tenants: (e.target as HTMLInputElement).checked
                          ? [...form.tenants, t.name]
                          : form.tenants.filter((x) => x !== t.name),
                      })
                    }
                  />{" "}
                  {t.name} <span class="muted">(VNI {t.vni})</span>
                </label>
              ))}
            </fieldset>
          )}
          <label>
            Attributes <span class="muted small">(optional, KEY=VALUE a line, e.g. location=paris)</span>
            <textarea
              rows={2}
              value={form.attributes}
              onInput={(e) => set({ attributes: (e.target as HTMLTextAreaElement).value })}
              disabled={busy || created !== null}
            />
          </label>
          <ErrorBox error={error} />
          {!created && (
            <button type="submit" class="primary" disabled={busy} data-testid="onboard-create">
              {busy ? "Creating…" : "Create token and profile"}
            </button>
          )}
        </form>
      </Card>
      {created && <Result created={created.token} yaml={created.yaml} />}
    </>
  );
}
