/**
 * Argument checks shared by the store facade and every module. Each failure is a
 * `ROTA_INVALID_ARGUMENT` (or `ROTA_PAYLOAD_TOO_LARGE`) with `detail.field` naming the culprit.
 */
import { InvalidArgumentError, PayloadTooLargeError } from './errors.js';
import { utf8Length } from './store/keys.js';

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  if (typeof value === 'string')
    return value.length > 40 ? `a ${value.length}-char string` : JSON.stringify(value);
  if (typeof value === 'object') return 'an object';
  return `${typeof value} ${String(value)}`;
}

/** Throw `ROTA_INVALID_ARGUMENT` for `field`. */
export function invalid(field: string, message: string, extra: Record<string, unknown> = {}): never {
  throw new InvalidArgumentError(`${field}: ${message}`, { detail: { field, ...extra } });
}

/** An options bag: undefined or a plain object whose keys are all in `allowed`. */
export function checkOptions<T extends object>(
  field: string,
  value: T | undefined,
  allowed: readonly string[],
): T | Record<string, never> {
  if (value === undefined) return {};
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    invalid(field, `must be an options object, got ${describe(value)}`);
  }
  for (const key of Object.keys(value)) {
    if (!allowed.includes(key))
      invalid(`${field}.${key}`, `unknown option (known: ${allowed.join(', ') || 'none'})`);
  }
  return value;
}

export function checkString(field: string, value: unknown): string {
  if (typeof value !== 'string') invalid(field, `must be a string, got ${describe(value)}`);
  return value;
}

export function checkBoolean(field: string, value: unknown): boolean {
  if (typeof value !== 'boolean') invalid(field, `must be a boolean, got ${describe(value)}`);
  return value;
}

/** An integer within [min, max]. */
export function checkInt(
  field: string,
  value: unknown,
  min = Number.MIN_SAFE_INTEGER,
  max = Number.MAX_SAFE_INTEGER,
): number {
  if (typeof value !== 'number' || !Number.isInteger(value))
    invalid(field, `must be an integer, got ${describe(value)}`);
  if (value < min || value > max) invalid(field, `must be between ${min} and ${max}, got ${value}`);
  return value;
}

/** A positive integer number of milliseconds (≥ min, default 1). */
export function checkDuration(field: string, value: unknown, min = 1): number {
  return checkInt(field, value, min);
}

/** An instant as Date or epoch ms; returns epoch ms. */
export function checkInstant(field: string, value: unknown): number {
  if (value instanceof Date) {
    const ms = value.getTime();
    if (Number.isNaN(ms)) invalid(field, 'is an invalid Date');
    return ms;
  }
  if (typeof value === 'number' && Number.isFinite(value)) return Math.trunc(value);
  return invalid(field, `must be a Date or epoch milliseconds, got ${describe(value)}`);
}

export function checkFunction<F extends (...args: never[]) => unknown>(field: string, value: unknown): F {
  if (typeof value !== 'function') invalid(field, `must be a function, got ${describe(value)}`);
  return value as F;
}

export function checkSignal(field: string, value: unknown): AbortSignal | undefined {
  if (value === undefined) return undefined;
  if (!(value instanceof AbortSignal)) invalid(field, `must be an AbortSignal, got ${describe(value)}`);
  return value;
}

export function checkEnum<T extends string>(field: string, value: unknown, allowed: readonly T[]): T {
  if (typeof value !== 'string' || !allowed.includes(value as T)) {
    invalid(field, `must be one of ${allowed.map((a) => `'${a}'`).join(', ')}, got ${describe(value)}`);
  }
  return value as T;
}

/** Maximum UTF-8 bytes of a user-supplied name (cluster.md §5). */
export const MAX_NAME_BYTES = 512;

/**
 * A name (lock, election, queue, schedule, pool, job key, ...): non-empty UTF-8 of at most 512
 * bytes, no NUL, no leading or trailing whitespace (cluster.md §5).
 */
export function checkName(field: string, value: unknown): string {
  const name = checkString(field, value);
  if (name.length === 0) invalid(field, 'must not be empty');
  if (name.includes('\u0000')) invalid(field, 'must not contain NUL');
  if (name.trim() !== name) invalid(field, 'must not have leading or trailing whitespace');
  if (utf8Length(name) > MAX_NAME_BYTES) invalid(field, `must be at most ${MAX_NAME_BYTES} UTF-8 bytes`);
  // Lone surrogates cannot be encoded as UTF-8 and would not round-trip through a store.
  if (!name.isWellFormed()) invalid(field, 'must be well-formed Unicode');
  return name;
}

/** Throw `ROTA_PAYLOAD_TOO_LARGE` when `bytes` exceeds `max`. */
export function checkSize(field: string, bytes: number, max: number): void {
  if (bytes > max) {
    throw new PayloadTooLargeError(`${field}: ${bytes} bytes is more than the limit of ${max}`, {
      detail: { field, bytes, max },
    });
  }
}

/**
 * Serialise a JSON value for storage, rejecting what JSON cannot carry faithfully (functions,
 * symbols, bigint, cycles, non-finite numbers) and anything over `maxBytes`.
 */
export function toJsonText(field: string, value: unknown, maxBytes: number): string {
  const problem = jsonProblem(value, true, []);
  if (problem) {
    const at = problem.path.map((k) => (typeof k === 'number' ? `[${k}]` : `.${k}`)).join('');
    invalid(`${field}${at}`, problem.reason);
  }
  const text = JSON.stringify(value);
  checkSize(field, utf8Length(text), maxBytes);
  return text;
}

/** What JSON cannot carry faithfully in a value: why, and the keys that lead to it. */
interface JsonProblem {
  path: (string | number)[];
  reason: string;
}

/**
 * The first thing in `v` JSON cannot carry faithfully, or null. The path is built only for a
 * problem, as the recursion unwinds: a path string per value was most of the check's cost in a
 * bulk enqueue. `parents` holds the objects being walked (a cycle returns to one).
 */
function jsonProblem(v: unknown, top: boolean, parents: object[]): JsonProblem | null {
  switch (typeof v) {
    case 'function':
    case 'symbol':
    case 'bigint':
      return { path: [], reason: `is not JSON-serialisable (${typeof v})` };
    case 'number':
      return Number.isFinite(v) ? null : { path: [], reason: `is not a finite number (${v})` };
    case 'undefined':
      return top ? { path: [], reason: 'must not be undefined' } : null;
    case 'object': {
      if (v === null || v instanceof Date) return null;
      if (parents.includes(v)) return { path: [], reason: 'contains a cycle' };
      parents.push(v);
      let found: JsonProblem | null = null;
      if (Array.isArray(v)) {
        for (let i = 0; found === null && i < v.length; i++) {
          found = jsonProblem(v[i], false, parents);
          found?.path.unshift(i);
        }
      } else {
        const o = v as Record<string, unknown>;
        const keys = Object.keys(o);
        for (let i = 0; found === null && i < keys.length; i++) {
          const key = keys[i] as string;
          found = jsonProblem(o[key], false, parents);
          found?.path.unshift(key);
        }
      }
      parents.pop();
      return found;
    }
    default:
      return null;
  }
}
