/**
 * Defaults and input checks of the tasks module (tasks.md §2.7, DESIGN.md decision 7). Every
 * public input is checked here before anything is written.
 */
import { ITEM_DEFAULTS } from '../store/port.js';
import {
  checkBoolean,
  checkDuration,
  checkEnum,
  checkFunction,
  checkInstant,
  checkInt,
  checkName,
  checkOptions,
  checkString,
  invalid,
} from '../validate.js';
import type { BackoffFunction, BackoffOptions, DedupOptions, QueueConfig } from './types.js';

/** Module defaults (DESIGN.md decision 7 wins over tasks.md where they differ). */
export const TASK_DEFAULTS = {
  maxAttempts: ITEM_DEFAULTS.maxAttempts,
  timeout: 900_000,
  completedTtl: ITEM_DEFAULTS.completedTtl,
  failedTtl: ITEM_DEFAULTS.failedTtl,
  leaseTtl: 30_000,
  convergeInterval: 30_000,
  startTimeout: 30_000,
  resolveLeaseTtl: 30_000,
  abortGrace: 5_000,
  maxRejections: 3,
  pollInterval: 5_000,
  closeTimeout: 30_000,
  progressBytes: 4096,
} as const;

/** Options of the tasks module, passed as `Rota.connect({ tasks: { ... } })`. */
export interface TasksOptions {
  /** Run the converger on this node when it leads `rota:tasks-converger`. Default true. */
  converger?: boolean;
  /** Time between converger passes on the leader. Default 30 000. */
  convergeInterval?: number;
  /** A claim not started after this long (store time) goes back to pending. Default 30 000. */
  startTimeout?: number;
  /** Extra time after `timeout` before the converger fails a still-running attempt. Default 5 000. */
  abortGrace?: number;
  /** Lease of `resolving` and `completions`. Default 30 000. */
  resolveLeaseTtl?: number;
  /** Rejections allowed before a task fails with ROTA_TASK_REJECTED. Default 3. */
  maxRejections?: number;
}

export type ResolvedTasksOptions = Required<TasksOptions>;

const TASKS_OPTION_KEYS = [
  'converger',
  'convergeInterval',
  'startTimeout',
  'abortGrace',
  'resolveLeaseTtl',
  'maxRejections',
] as const;

/** Check `Rota.connect({ tasks })` and apply defaults. */
export function resolveTasksOptions(options: TasksOptions | undefined): ResolvedTasksOptions {
  const o = checkOptions('tasks', options, TASKS_OPTION_KEYS) as TasksOptions;
  return {
    converger: o.converger === undefined ? true : checkBoolean('tasks.converger', o.converger),
    convergeInterval: checkDuration(
      'tasks.convergeInterval',
      o.convergeInterval ?? TASK_DEFAULTS.convergeInterval,
    ),
    startTimeout: checkDuration('tasks.startTimeout', o.startTimeout ?? TASK_DEFAULTS.startTimeout),
    abortGrace: checkInt('tasks.abortGrace', o.abortGrace ?? TASK_DEFAULTS.abortGrace, 0),
    resolveLeaseTtl: checkDuration(
      'tasks.resolveLeaseTtl',
      o.resolveLeaseTtl ?? TASK_DEFAULTS.resolveLeaseTtl,
      1000,
    ),
    maxRejections: checkInt('tasks.maxRejections', o.maxRejections ?? TASK_DEFAULTS.maxRejections, 0),
  };
}

/** Task ids: caller-supplied ids must match this. */
export const TASK_ID = /^[A-Za-z0-9_-]{1,128}$/;
const INT32_MIN = -2147483648;
const INT32_MAX = 2147483647;

export function checkTaskId(field: string, value: unknown): string {
  const id = checkString(field, value);
  if (!TASK_ID.test(id)) invalid(field, 'must match ^[A-Za-z0-9_-]{1,128}$');
  return id;
}

export function checkPriority(field: string, value: unknown): number {
  return checkInt(field, value, INT32_MIN, INT32_MAX);
}

/** A backoff object (functions are checked by {@link checkBackoffOrFunction}). */
export function checkBackoff(field: string, value: unknown): BackoffOptions {
  const b = checkOptions(field, value as BackoffOptions, [
    'type',
    'delay',
    'factor',
    'maxDelay',
    'jitter',
  ]) as BackoffOptions;
  if (value === null || typeof value !== 'object') invalid(field, 'must be a backoff object');
  if (b.type !== undefined) checkEnum(`${field}.type`, b.type, ['fixed', 'exponential']);
  if (b.delay !== undefined) checkInt(`${field}.delay`, b.delay, 0);
  if (b.factor !== undefined) {
    if (typeof b.factor !== 'number' || !Number.isFinite(b.factor) || b.factor < 1)
      invalid(`${field}.factor`, 'must be a finite number ≥ 1');
  }
  if (b.maxDelay !== undefined) checkDuration(`${field}.maxDelay`, b.maxDelay);
  if (b.jitter !== undefined) {
    if (typeof b.jitter !== 'number' || !(b.jitter >= 0 && b.jitter <= 1))
      invalid(`${field}.jitter`, 'must be a number between 0 and 1');
  }
  return { ...b };
}

export function checkBackoffOrFunction(field: string, value: unknown): BackoffOptions | BackoffFunction {
  if (typeof value === 'function') return checkFunction<BackoffFunction>(field, value);
  return checkBackoff(field, value);
}

export function checkDedup(field: string, value: unknown): DedupOptions {
  const d = checkOptions(field, value as DedupOptions, ['key', 'ttl', 'mode']) as DedupOptions;
  if (value === null || typeof value !== 'object') invalid(field, 'must be a dedup object');
  const out: DedupOptions = { key: checkName(`${field}.key`, d.key) };
  if (d.ttl !== undefined) out.ttl = checkDuration(`${field}.ttl`, d.ttl);
  if (d.mode !== undefined) out.mode = checkEnum(`${field}.mode`, d.mode, ['keep', 'replace'] as const);
  return out;
}

export function checkCallbackUrl(field: string, value: unknown): string {
  const s = checkString(field, value);
  let url: URL;
  try {
    url = new URL(s);
  } catch {
    return invalid(field, 'must be an absolute http(s) URL');
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') invalid(field, 'must be an http(s) URL');
  return s;
}

export function checkTags(field: string, value: unknown): string[] {
  if (!Array.isArray(value)) invalid(field, 'must be an array of names');
  return value.map((t, i) => checkName(`${field}[${i}]`, t));
}

/** `null` or a positive duration. */
export function checkOptionalDuration(field: string, value: unknown, min = 1): number | null {
  return value === null ? null : checkDuration(field, value, min);
}

export const QUEUE_CONFIG_KEYS = [
  'maxAttempts',
  'backoff',
  'timeout',
  'heartbeatTimeout',
  'leaseTtl',
  'deadLetter',
  'completedTtl',
  'failedTtl',
  'claimTimeout',
] as const;

/** Check a queue configuration; returns a copy without undefined fields. */
export function checkQueueConfig(field: string, value: unknown): QueueConfig {
  if (value === null || typeof value !== 'object' || Array.isArray(value))
    invalid(field, 'must be a queue configuration object');
  const c = checkOptions(field, value as QueueConfig, QUEUE_CONFIG_KEYS) as QueueConfig;
  const out: QueueConfig = {};
  if (c.maxAttempts !== undefined) out.maxAttempts = checkInt(`${field}.maxAttempts`, c.maxAttempts, 1);
  if (c.backoff !== undefined) out.backoff = checkBackoff(`${field}.backoff`, c.backoff);
  if (c.timeout !== undefined) out.timeout = checkOptionalDuration(`${field}.timeout`, c.timeout);
  if (c.heartbeatTimeout !== undefined)
    out.heartbeatTimeout = checkDuration(`${field}.heartbeatTimeout`, c.heartbeatTimeout);
  if (c.leaseTtl !== undefined) out.leaseTtl = checkDuration(`${field}.leaseTtl`, c.leaseTtl, 1000);
  if (c.deadLetter !== undefined)
    out.deadLetter = c.deadLetter === null ? null : checkName(`${field}.deadLetter`, c.deadLetter);
  if (c.completedTtl !== undefined) out.completedTtl = checkDuration(`${field}.completedTtl`, c.completedTtl);
  if (c.failedTtl !== undefined) out.failedTtl = checkDuration(`${field}.failedTtl`, c.failedTtl);
  if (c.claimTimeout !== undefined)
    out.claimTimeout = checkOptionalDuration(`${field}.claimTimeout`, c.claimTimeout);
  return out;
}

export { checkInstant };
