// The profile as YAML, the same document `ztos token create --profile-out` writes.
// A tiny emitter is enough: a profile is a flat mapping of strings, numbers,
// lists and string maps. Strings are written as JSON strings, which YAML reads
// as double-quoted scalars, so no value can be misread (yes/no, 0x…, colons).

const HEADER = "# ZTOS enrolment profile: contains a single-use secret, keep it private.\n";

function scalar(value: unknown): string {
  if (value === null || value === undefined) return "null";
  if (typeof value === "number" || typeof value === "boolean") return String(value);
  return JSON.stringify(String(value));
}

function key(name: string): string {
  return /^[A-Za-z_][A-Za-z0-9_.-]*$/.test(name) ? name : JSON.stringify(name);
}

export function toYaml(doc: Record<string, unknown>): string {
  const lines: string[] = [];
  for (const [name, value] of Object.entries(doc)) {
    if (Array.isArray(value)) {
      if (!value.length) lines.push(`${key(name)}: []`);
      else lines.push(`${key(name)}:`, ...value.map((v) => `- ${scalar(v)}`));
    } else if (value !== null && typeof value === "object") {
      const inner = Object.entries(value as Record<string, unknown>);
      if (!inner.length) lines.push(`${key(name)}: {}`);
      else lines.push(`${key(name)}:`, ...inner.map(([k, v]) => `  ${key(k)}: ${scalar(v)}`));
    } else {
      lines.push(`${key(name)}: ${scalar(value)}`);
    }
  }
  return lines.join("\n") + "\n";
}

export function profileYaml(profile: Record<string, unknown>): string {
  return HEADER + toYaml(profile);
}
