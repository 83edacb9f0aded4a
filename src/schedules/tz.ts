/**
 * Local time in an IANA time zone, for the calendar triggers (daily / weekly / monthly). Pure:
 * only `Intl` is used, never the process's own time zone.
 *
 * DST rules (schedules.md §2.4, the same as croner's for fixed times): a local time that does not
 * exist (spring forward) maps to the first valid instant after the gap; a local time that occurs
 * twice (fall back) maps to its first occurrence.
 */

const DAY_MS = 86_400_000;

/** Calendar fields of an instant in a zone. `month` is 1–12. */
export interface LocalFields {
  year: number;
  month: number;
  day: number;
  hour: number;
  minute: number;
  second: number;
}

const formatters = new Map<string, Intl.DateTimeFormat>();

function formatter(timeZone: string): Intl.DateTimeFormat {
  let f = formatters.get(timeZone);
  if (!f) {
    f = new Intl.DateTimeFormat('en-US', {
      timeZone,
      hourCycle: 'h23',
      year: 'numeric',
      month: 'numeric',
      day: 'numeric',
      hour: 'numeric',
      minute: 'numeric',
      second: 'numeric',
      era: 'short',
    });
    formatters.set(timeZone, f);
  }
  return f;
}

/** True when `timeZone` is a zone name this runtime knows (`UTC`, `Europe/Berlin`, ...). */
export function isValidTimeZone(timeZone: string): boolean {
  if (typeof timeZone !== 'string' || timeZone.length === 0) return false;
  try {
    formatter(timeZone);
    return true;
  } catch {
    return false;
  }
}

/** The calendar fields of `ms` in `timeZone`. */
export function localFields(ms: number, timeZone: string): LocalFields {
  if (timeZone === 'UTC') {
    const d = new Date(ms);
    return {
      year: d.getUTCFullYear(),
      month: d.getUTCMonth() + 1,
      day: d.getUTCDate(),
      hour: d.getUTCHours(),
      minute: d.getUTCMinutes(),
      second: d.getUTCSeconds(),
    };
  }
  const out: LocalFields = { year: 0, month: 0, day: 0, hour: 0, minute: 0, second: 0 };
  let bc = false;
  for (const part of formatter(timeZone).formatToParts(ms)) {
    switch (part.type) {
      case 'year':
        out.year = Number(part.value);
        break;
      case 'month':
        out.month = Number(part.value);
        break;
      case 'day':
        out.day = Number(part.value);
        break;
      case 'hour':
        out.hour = Number(part.value) % 24;
        break;
      case 'minute':
        out.minute = Number(part.value);
        break;
      case 'second':
        out.second = Number(part.value);
        break;
      case 'era':
        bc = part.value.startsWith('B');
        break;
    }
  }
  if (bc) out.year = 1 - out.year;
  return out;
}

/** `UTC(fields) − instant`: the zone's offset at `ms`, in ms (whole seconds). */
export function offsetAt(ms: number, timeZone: string): number {
  if (timeZone === 'UTC') return 0;
  const f = localFields(ms, timeZone);
  const asUtc = Date.UTC(f.year, f.month - 1, f.day, f.hour, f.minute, f.second);
  return asUtc - Math.floor(ms / 1000) * 1000;
}

/** Days since 1970-01-01 of a calendar date (proleptic Gregorian). */
export function dayNumber(year: number, month: number, day: number): number {
  return Math.floor(Date.UTC(year, month - 1, day) / DAY_MS);
}

/** The calendar date of a day number. */
export function dateOfDay(day: number): { year: number; month: number; day: number } {
  const d = new Date(day * DAY_MS);
  return { year: d.getUTCFullYear(), month: d.getUTCMonth() + 1, day: d.getUTCDate() };
}

/** The local day number that contains instant `ms` in `timeZone`. */
export function localDay(ms: number, timeZone: string): number {
  const f = localFields(ms, timeZone);
  return dayNumber(f.year, f.month, f.day);
}

/** Day of the week of a day number: 0 = Sunday … 6 = Saturday (1970-01-01 was a Thursday). */
export function weekdayOf(day: number): number {
  return (((day + 4) % 7) + 7) % 7;
}

/** Number of days in a month (month 1–12). */
export function daysInMonth(year: number, month: number): number {
  return new Date(Date.UTC(year, month, 0)).getUTCDate();
}

/**
 * The instant of local date `day` (a day number) at `secondOfDay` in `timeZone`. A nonexistent
 * local time gives the first instant after the gap; an ambiguous one gives its first occurrence.
 */
export function localToInstant(day: number, secondOfDay: number, timeZone: string): number {
  const wall = day * DAY_MS + secondOfDay * 1000;
  if (timeZone === 'UTC') return wall;
  const before = offsetAt(wall - DAY_MS, timeZone);
  const after = offsetAt(wall + DAY_MS, timeZone);
  const valid: number[] = [];
  for (const candidate of new Set([wall - before, wall - after])) {
    if (candidate + offsetAt(candidate, timeZone) === wall) valid.push(candidate);
  }
  if (valid.length > 0) return Math.min(...valid);
  // A gap: the wall time was skipped. Find the transition instant between the two readings.
  let lo = Math.min(wall - before, wall - after);
  let hi = Math.max(wall - before, wall - after);
  const loOffset = offsetAt(lo, timeZone);
  while (hi - lo > 1000) {
    const mid = lo + Math.floor((hi - lo) / 2000) * 1000;
    if (offsetAt(mid, timeZone) === loOffset) lo = mid;
    else hi = mid;
  }
  return hi;
}
