/**
 * The CLI's edge: human input (durations such as `30s`, JSON payloads, lists) is parsed and checked
 * here, before any store is opened, and results are printed as aligned tables or `--json`.
 */
import ms from 'ms';
import { invalid } from '../validate.js';

/** `30s`, `5m`, `1h`, `1.5h` or a plain number of ms → ms (a positive integer). */
export function parseDuration(field: string, text: string): number {
  const trimmed = text.trim();
  const value = /^\d+$/.test(trimmed) ? Number(trimmed) : ms(trimmed as ms.StringValue);
  if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0) {
    invalid(field, `"${text}" is not a duration (use e.g. 500ms, 30s, 5m, 1h, or a number of ms)`);
  }
  return Math.round(value);
}

/** A whole number within bounds. */
export function parseInteger(
  field: string,
  text: string,
  min = Number.MIN_SAFE_INTEGER,
  max = Number.MAX_SAFE_INTEGER,
): number {
  const n = Number(text);
  if (!/^-?\d+$/.test(text.trim()) || !Number.isSafeInteger(n) || n < min || n > max) {
    invalid(field, `"${text}" is not an integer in ${min} … ${max}`);
  }
  return n;
}

/** JSON text → value; a bare word that is not JSON is taken as a string (`rota tasks add q hello`). */
export function parsePayload(field: string, text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    if (/^[\s]*[[{"]/.test(text)) invalid(field, 'is not valid JSON');
    return text;
  }
}

/** `a,b,c` → names. */
export function parseList(text: string): string[] {
  return text
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s.length > 0);
}

/** An instant as ISO text, or `-`. */
export function when(ms: number | null | undefined): string {
  return typeof ms === 'number' ? new Date(ms).toISOString().replace('.000Z', 'Z') : '-';
}

/** A duration in ms as short text (`1.2s`, `3m`), or `-`. */
export function span(value: number | null | undefined): string {
  if (typeof value !== 'number') return '-';
  return ms(Math.round(value));
}

/** Rows as an aligned text table with a header line. */
export function table(rows: object[], columns: string[]): string {
  if (rows.length === 0) return '(none)\n';
  const cell = (v: unknown) =>
    v === null || v === undefined ? '-' : typeof v === 'object' ? JSON.stringify(v) : String(v);
  const cells = rows.map((r) => columns.map((c) => cell((r as Record<string, unknown>)[c])));
  const widths = columns.map((c, i) => Math.max(c.length, ...cells.map((row) => (row[i] ?? '').length)));
  const line = (values: string[]) =>
    values
      .map((v, i) => (i === values.length - 1 ? v : v.padEnd(widths[i] ?? 0)))
      .join('  ')
      .trimEnd();
  return `${[line(columns.map((c) => c.toUpperCase())), ...cells.map(line)].join('\n')}\n`;
}
