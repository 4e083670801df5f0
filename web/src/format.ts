// Small pure formatting helpers shared by the pages.

export function bits(bps: number | null | undefined): string {
  if (bps === null || bps === undefined || !Number.isFinite(bps)) return "—";
  const units = ["bit/s", "kbit/s", "Mbit/s", "Gbit/s", "Tbit/s"];
  let value = bps;
  let unit = 0;
  while (Math.abs(value) >= 1000 && unit < units.length - 1) {
    value /= 1000;
    unit += 1;
  }
  return `${value.toFixed(value >= 100 || unit === 0 ? 0 : 1)} ${units[unit]}`;
}

export function ago(seconds: number | null | undefined): string {
  if (seconds === null || seconds === undefined) return "never";
  if (seconds < 1) return "just now";
  if (seconds < 90) return `${Math.round(seconds)} s ago`;
  if (seconds < 5400) return `${Math.round(seconds / 60)} min ago`;
  if (seconds < 172800) return `${Math.round(seconds / 3600)} h ago`;
  return `${Math.round(seconds / 86400)} d ago`;
}

/** "in 3 h" / "2 d ago" for a timestamp relative to now. */
export function relative(iso: string | null | undefined, now = Date.now()): string {
  if (!iso) return "—";
  const diff = (Date.parse(iso) - now) / 1000;
  if (Number.isNaN(diff)) return iso;
  if (diff < 0) return ago(-diff);
  if (diff < 5400) return `in ${Math.max(1, Math.round(diff / 60))} min`;
  if (diff < 172800) return `in ${Math.round(diff / 3600)} h`;
  return `in ${Math.round(diff / 86400)} d`;
}

export function datetime(iso: string | null | undefined): string {
  if (!iso) return "—";
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return iso;
  return d.toISOString().replace("T", " ").replace(/\.\d+Z$/, "Z");
}

export function shortKey(key: string, keep = 10): string {
  return key.length > keep + 1 ? `${key.slice(0, keep)}…` : key;
}

/** "1h" / "90m" / "7d" / "3600" -> seconds; null when unreadable. */
export function parseDuration(text: string): number | null {
  const m = /^\s*(\d+)\s*([smhd]?)\s*$/i.exec(text);
  if (!m) return null;
  const n = Number(m[1]);
  const mult: Record<string, number> = { "": 1, s: 1, m: 60, h: 3600, d: 86400 };
  return n * mult[m[2].toLowerCase()];
}
