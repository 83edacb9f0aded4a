/**
 * Validation and normalization of definitions and start options (schedules.md §2.9). Everything is
 * checked before any write; trigger errors are `ROTA_INVALID_TRIGGER`, cron errors
 * `ROTA_INVALID_CRON` (`detail.reason`: `parse` / `never-fires`), the rest `ROTA_INVALID_ARGUMENT`,
 * each with `detail.field`.
 */
import type { Elector, Locker } from '../cluster/interfaces.js';
import { isLogger } from '../core/logger.js';
import { InvalidCronError, InvalidTriggerError } from '../errors.js';
import {
  checkBoolean,
  checkEnum,
  checkFunction,
  checkInstant,
  checkInt,
  checkName,
  checkOptions,
  checkSignal,
  checkString,
  invalid,
} from '../validate.js';
import { type DefSpec, hashSpec, type StoredOptions } from './records.js';
import { compileCron, firstSlot, SEARCH_HORIZON_MS, type Trigger } from './slots.js';
import {
  type AtTime,
  type BackoffFunction,
  DEF_DEFAULTS,
  type EffectiveStartOptions,
  type RunHandler,
  type ScheduleDef,
  type ScheduleDefaults,
  type ScheduleHooks,
  START_DEFAULTS,
  type StartOptions,
} from './types.js';
import { isValidTimeZone } from './tz.js';

export const TRIGGER_KEYS = [
  'every',
  'everyRandom',
  'cron',
  'daily',
  'weekly',
  'monthly',
  'once',
  'dynamic',
] as const;

const DEF_KEYS = [
  'name',
  'description',
  'tags',
  ...TRIGGER_KEYS,
  'anchor',
  'seconds',
  'timezone',
  'startAt',
  'allowPastStart',
  'stopAt',
  'limitRuns',
  'overlap',
  'catchUp',
  'catchUpWindow',
  'intervalFromCompletion',
  'timeout',
  'stallTimeout',
  'retry',
  'maxInterruptions',
  'keepRuns',
  'failureBackoff',
  'defaultNextRunIn',
  'scope',
  'hooks',
  'locker',
];

const MAX_DESCRIPTION = 1024;

function triggerError(field: string, message: string): never {
  throw new InvalidTriggerError(`${field}: ${message}`, { detail: { field } });
}

function positiveTriggerInt(field: string, value: unknown): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value <= 0) {
    triggerError(field, `must be a positive integer, got ${String(value)}`);
  }
  return value;
}

function positiveInt(field: string, value: unknown): number {
  return checkInt(field, value, 1);
}

/** Seconds of the day of an at-time. */
export function parseAtTime(field: string, value: AtTime): number {
  let hour: unknown;
  let minute: unknown = 0;
  let second: unknown = 0;
  if (typeof value === 'string') {
    const m = /^(\d{1,2}):(\d{2})(?::(\d{2}))?$/.exec(value);
    if (!m) triggerError(field, `must look like 'HH:MM' or 'HH:MM:SS', got ${JSON.stringify(value)}`);
    hour = Number(m[1]);
    minute = Number(m[2]);
    second = m[3] === undefined ? 0 : Number(m[3]);
  } else if (typeof value === 'object' && value !== null) {
    hour = value.hour;
    minute = value.minute ?? 0;
    second = value.second ?? 0;
  } else triggerError(field, 'must be a time such as "09:30" or { hour, minute, second }');
  const int = (f: string, v: unknown, max: number) => {
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > max) {
      triggerError(`${field}.${f}`, `must be an integer 0–${max}, got ${String(v)}`);
    }
    return v;
  };
  return int('hour', hour, 23) * 3600 + int('minute', minute, 59) * 60 + int('second', second, 59);
}

function atTimes(field: string, value: unknown): number[] {
  if (value === undefined || value === null) triggerError(field, 'is required');
  const list = Array.isArray(value) ? value : [value];
  if (list.length === 0) triggerError(field, 'must not be empty');
  const out = list.map((v, i) => parseAtTime(`${field}[${i}]`, v as AtTime));
  return [...new Set(out)].sort((a, b) => a - b);
}

function intervalOf(field: string, value: unknown): number {
  return value === undefined ? 1 : positiveTriggerInt(field, value);
}

function objectOf(field: string, value: unknown): Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    triggerError(field, 'must be an object');
  }
  return value as Record<string, unknown>;
}

/** Go-style duration of `@every`: `1h30m`, `500ms`, `2.5s`. */
export function parseGoDuration(text: string): number | null {
  const units: Record<string, number> = {
    ns: 1e-6,
    us: 1e-3,
    µs: 1e-3,
    ms: 1,
    s: 1000,
    m: 60_000,
    h: 3_600_000,
  };
  const re = /(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)/gy;
  let total = 0;
  let pos = 0;
  let m = re.exec(text);
  while (m) {
    total += Number(m[1]) * (units[m[2] as string] as number);
    pos = re.lastIndex;
    m = re.exec(text);
  }
  if (pos !== text.length || pos === 0) return null;
  const ms = Math.round(total);
  return ms >= 1 ? ms : null;
}

function cronError(reason: 'parse' | 'never-fires', message: string, cause?: unknown): never {
  throw new InvalidCronError(message, { detail: { field: 'cron', reason }, ...(cause ? { cause } : {}) });
}

/** Split a `CRON_TZ=`/`TZ=` prefix off a cron expression. */
export function splitCronTz(expr: string): { tz: string | null; expr: string } {
  const m = /^\s*(?:CRON_TZ|TZ)=(\S+)\s+(.*)$/s.exec(expr);
  return m ? { tz: m[1] as string, expr: (m[2] as string).trim() } : { tz: null, expr: expr.trim() };
}

function normalizeTrigger(
  def: ScheduleDef,
  timezoneIn: string | undefined,
): { trigger: Trigger; timezone: string | undefined } {
  const present = TRIGGER_KEYS.filter((k) => def[k] !== undefined);
  if (present.length === 0) {
    triggerError('trigger', `exactly one trigger is required (${TRIGGER_KEYS.join(', ')})`);
  }
  if (present.length > 1)
    triggerError('trigger', `exactly one trigger is allowed, got ${present.join(', ')}`);
  const key = present[0];
  if (def.anchor !== undefined && key !== 'every') invalid('anchor', 'is only allowed with `every`');
  if (def.seconds !== undefined && key !== 'cron') invalid('seconds', 'is only allowed with `cron`');
  switch (key) {
    case 'every':
      return {
        trigger: {
          kind: 'every',
          every: positiveTriggerInt('every', def.every),
          origin: def.anchor === undefined ? null : checkInstant('anchor', def.anchor),
        },
        timezone: timezoneIn,
      };
    case 'everyRandom': {
      const o = objectOf('everyRandom', def.everyRandom);
      const min = positiveTriggerInt('everyRandom.min', o.min);
      const max = positiveTriggerInt('everyRandom.max', o.max);
      if (min >= max) triggerError('everyRandom.max', `must be greater than min (${min}), got ${max}`);
      return { trigger: { kind: 'everyRandom', min, max }, timezone: timezoneIn };
    }
    case 'cron': {
      const raw = def.cron;
      if (typeof raw !== 'string' || raw.trim().length === 0)
        cronError('parse', 'cron: must be a non-empty string');
      const seconds = def.seconds === undefined ? null : checkBoolean('seconds', def.seconds);
      const { tz, expr } = splitCronTz(raw);
      let timezone = timezoneIn;
      if (tz !== null) {
        if (!isValidTimeZone(tz)) cronError('parse', `cron: unknown time zone ${JSON.stringify(tz)}`);
        if (timezoneIn !== undefined && timezoneIn !== tz) {
          invalid('timezone', `conflicts with the cron prefix time zone ${tz}`);
        }
        timezone = tz;
      }
      const every = /^@every\s+(\S+)$/i.exec(expr);
      if (every) {
        const ms = parseGoDuration(every[1] as string);
        if (ms === null) cronError('parse', `cron: bad @every duration ${JSON.stringify(every[1])}`);
        return { trigger: { kind: 'every', every: ms, origin: null }, timezone };
      }
      try {
        compileCron(expr, seconds, timezone ?? DEF_DEFAULTS.timezone);
      } catch (err) {
        cronError('parse', `cron: ${err instanceof Error ? err.message : String(err)}`, err);
      }
      return { trigger: { kind: 'cron', expr, seconds }, timezone };
    }
    case 'daily': {
      const o = objectOf('daily', def.daily);
      return {
        trigger: {
          kind: 'daily',
          interval: intervalOf('daily.interval', o.interval),
          at: atTimes('daily.at', o.at),
        },
        timezone: timezoneIn,
      };
    }
    case 'weekly': {
      const o = objectOf('weekly', def.weekly);
      const interval = intervalOf('weekly.interval', o.interval);
      if (!Array.isArray(o.weekdays) || o.weekdays.length === 0) {
        triggerError('weekly.weekdays', 'must be a non-empty array of 0–6 (Sunday = 0)');
      }
      const weekdays = (o.weekdays as unknown[]).map((d, i) => {
        if (typeof d !== 'number' || !Number.isInteger(d) || d < 0 || d > 6) {
          triggerError(`weekly.weekdays[${i}]`, `must be an integer 0–6, got ${String(d)}`);
        }
        return d;
      });
      return {
        trigger: {
          kind: 'weekly',
          interval,
          weekdays: [...new Set(weekdays)].sort((a, b) => a - b),
          at: atTimes('weekly.at', o.at),
        },
        timezone: timezoneIn,
      };
    }
    case 'monthly': {
      const o = objectOf('monthly', def.monthly);
      const interval = intervalOf('monthly.interval', o.interval);
      if (!Array.isArray(o.days) || o.days.length === 0) {
        triggerError('monthly.days', 'must be a non-empty array of 1..31 or -1..-31');
      }
      const days = (o.days as unknown[]).map((d, i) => {
        if (typeof d !== 'number' || !Number.isInteger(d) || d === 0 || d < -31 || d > 31) {
          triggerError(`monthly.days[${i}]`, `must be 1..31 or -1..-31, got ${String(d)}`);
        }
        return d;
      });
      return {
        trigger: { kind: 'monthly', interval, days: [...new Set(days)], at: atTimes('monthly.at', o.at) },
        timezone: timezoneIn,
      };
    }
    case 'once': {
      const v = def.once;
      const list = Array.isArray(v) ? v : [v];
      if (list.length === 0) triggerError('once', 'must list at least one instant');
      const at = list.map((x, i) => {
        if (x === 'now') return 'now' as const;
        try {
          return checkInstant(`once[${i}]`, x);
        } catch {
          return triggerError(Array.isArray(v) ? `once[${i}]` : 'once', "must be 'now', a Date or epoch ms");
        }
      });
      return { trigger: { kind: 'once', at }, timezone: timezoneIn };
    }
    case 'dynamic': {
      const o = objectOf('dynamic', def.dynamic);
      checkOptions('dynamic', o, ['firstRunIn']);
      let firstRunIn = 0;
      if (o.firstRunIn !== undefined) {
        if (typeof o.firstRunIn !== 'number' || !Number.isInteger(o.firstRunIn) || o.firstRunIn < 0) {
          triggerError('dynamic.firstRunIn', 'must be an integer ≥ 0');
        }
        firstRunIn = o.firstRunIn;
      }
      return { trigger: { kind: 'dynamic', firstRunIn }, timezone: timezoneIn };
    }
    default:
      return triggerError('trigger', 'unknown trigger');
  }
}

/** Local (not persisted) parts of a registration. */
export interface LocalParts {
  handler: RunHandler | undefined;
  hooks: ScheduleHooks;
  locker: Locker | undefined;
  backoff: BackoffFunction | undefined;
}

/** A validated, normalized definition. */
export interface NormalizedDef {
  spec: DefSpec;
  hash: string;
  description: string;
  scope: 'cluster' | 'local';
  local: LocalParts;
}

export function checkHooks(field: string, value: unknown): ScheduleHooks {
  if (value === undefined) return {};
  const hooks = checkOptions(field, value as ScheduleHooks, [
    'beforeRun',
    'afterRun',
    'afterRunError',
    'onClaimLost',
  ]) as ScheduleHooks;
  for (const [k, v] of Object.entries(hooks)) {
    if (v !== undefined) checkFunction(`${field}.${k}`, v);
  }
  return { ...hooks };
}

export function checkLocker(field: string, value: unknown): Locker | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'object' || value === null || typeof (value as Locker).lock !== 'function') {
    invalid(field, 'must be a Locker (an object with a lock(key, options) method)');
  }
  return value as Locker;
}

function checkElector(field: string, value: unknown): Elector | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'object' || value === null || typeof (value as Elector).isLeader !== 'function') {
    invalid(field, 'must be an Elector (an object with an isLeader() method)');
  }
  return value as Elector;
}

function checkRetry(field: string, value: unknown): { stored: StoredOptions['retry']; fn?: BackoffFunction } {
  if (value === undefined) return { stored: null };
  const o = checkOptions(field, value as Record<string, unknown>, ['maxAttempts', 'backoff']) as Record<
    string,
    unknown
  >;
  const maxAttempts =
    o.maxAttempts === undefined
      ? DEF_DEFAULTS.retryMaxAttempts
      : positiveInt(`${field}.maxAttempts`, o.maxAttempts);
  if (typeof o.backoff === 'function') {
    return { stored: { maxAttempts, backoff: null, custom: true }, fn: o.backoff as BackoffFunction };
  }
  if (o.backoff === undefined) return { stored: { maxAttempts, backoff: null, custom: false } };
  const b = checkOptions(`${field}.backoff`, o.backoff as Record<string, unknown>, [
    'type',
    'delay',
    'factor',
    'maxDelay',
    'jitter',
  ]) as Record<string, unknown>;
  const type =
    b.type === undefined
      ? 'exponential'
      : checkEnum(`${field}.backoff.type`, b.type, ['fixed', 'exponential']);
  const delay = b.delay === undefined ? 1000 : positiveInt(`${field}.backoff.delay`, b.delay);
  const maxDelay =
    b.maxDelay === undefined ? 3_600_000 : positiveInt(`${field}.backoff.maxDelay`, b.maxDelay);
  let factor = 2;
  if (b.factor !== undefined) {
    if (typeof b.factor !== 'number' || !Number.isFinite(b.factor) || b.factor < 1) {
      invalid(`${field}.backoff.factor`, 'must be a number ≥ 1');
    }
    factor = b.factor;
  }
  let jitter = 0.2;
  if (b.jitter !== undefined) {
    if (typeof b.jitter !== 'number' || !(b.jitter >= 0 && b.jitter <= 1)) {
      invalid(`${field}.backoff.jitter`, 'must be a number in [0, 1]');
    }
    jitter = b.jitter;
  }
  return { stored: { maxAttempts, backoff: { type, delay, factor, maxDelay, jitter }, custom: false } };
}

function optionalPositive(field: string, value: unknown): number | null {
  return value === undefined ? null : positiveInt(field, value);
}

/**
 * Validate and normalize a definition (no store access). Time-relative checks (`once` in the past,
 * `startAt`, `stopAt`) are done by {@link checkTimes} against store time.
 */
export function normalizeDef(input: ScheduleDef, handler?: unknown): NormalizedDef {
  if (typeof input !== 'object' || input === null || Array.isArray(input))
    invalid('def', 'must be an object');
  const def = checkOptions('def', input, DEF_KEYS) as ScheduleDef;
  const name = checkName('name', def.name);
  let description = '';
  if (def.description !== undefined) {
    description = checkString('description', def.description);
    if (description.length > MAX_DESCRIPTION)
      invalid('description', `must be at most ${MAX_DESCRIPTION} chars`);
  }
  let tags: string[] = [];
  if (def.tags !== undefined) {
    if (!Array.isArray(def.tags)) invalid('tags', 'must be an array of names');
    tags = [...new Set(def.tags.map((t, i) => checkName(`tags[${i}]`, t)))].sort();
  }
  if (def.timezone !== undefined) {
    checkString('timezone', def.timezone);
    if (!isValidTimeZone(def.timezone))
      invalid('timezone', `unknown IANA time zone ${JSON.stringify(def.timezone)}`);
  }
  const { trigger, timezone } = normalizeTrigger(def, def.timezone);
  const scope = def.scope === undefined ? 'cluster' : checkEnum('scope', def.scope, ['cluster', 'local']);
  const intervalFromCompletion =
    def.intervalFromCompletion === undefined
      ? false
      : checkBoolean('intervalFromCompletion', def.intervalFromCompletion);
  if (intervalFromCompletion && trigger.kind !== 'every' && trigger.kind !== 'everyRandom') {
    invalid('intervalFromCompletion', 'is only allowed with `every` or `everyRandom`');
  }
  let startAt: number | 'now' | null = null;
  if (def.startAt !== undefined)
    startAt = def.startAt === 'now' ? 'now' : checkInstant('startAt', def.startAt);
  const allowPastStart =
    def.allowPastStart === undefined ? false : checkBoolean('allowPastStart', def.allowPastStart);
  const stopAt = def.stopAt === undefined ? null : checkInstant('stopAt', def.stopAt);
  if (stopAt !== null && typeof startAt === 'number' && stopAt <= startAt) {
    invalid('stopAt', 'must be after startAt');
  }
  const retry = checkRetry('retry', def.retry);
  let failureBackoff: StoredOptions['failureBackoff'] = null;
  if (def.failureBackoff !== undefined) {
    const fb = checkOptions('failureBackoff', def.failureBackoff, ['delay', 'maxDelay']);
    const delay =
      fb.delay === undefined
        ? DEF_DEFAULTS.failureBackoff.delay
        : positiveInt('failureBackoff.delay', fb.delay);
    const maxDelay =
      fb.maxDelay === undefined
        ? Math.max(delay, DEF_DEFAULTS.failureBackoff.maxDelay)
        : positiveInt('failureBackoff.maxDelay', fb.maxDelay);
    if (maxDelay < delay) invalid('failureBackoff.maxDelay', 'must be ≥ delay');
    failureBackoff = { delay, maxDelay };
  }
  const options: StoredOptions = {
    overlap:
      def.overlap === undefined
        ? null
        : checkEnum<'skip' | 'wait' | 'allow'>('overlap', def.overlap, ['skip', 'wait', 'allow']),
    catchUp:
      def.catchUp === undefined
        ? null
        : checkEnum<'latest' | 'all'>('catchUp', def.catchUp, ['latest', 'all']),
    catchUpWindow: optionalPositive('catchUpWindow', def.catchUpWindow),
    timeout: optionalPositive('timeout', def.timeout),
    stallTimeout: optionalPositive('stallTimeout', def.stallTimeout),
    retry: retry.stored,
    maxInterruptions:
      def.maxInterruptions === undefined ? null : checkInt('maxInterruptions', def.maxInterruptions, 0),
    keepRuns: optionalPositive('keepRuns', def.keepRuns),
    limitRuns: optionalPositive('limitRuns', def.limitRuns),
    intervalFromCompletion,
    startAt,
    allowPastStart,
    stopAt,
    failureBackoff,
    defaultNextRunIn: optionalPositive('defaultNextRunIn', def.defaultNextRunIn),
  };
  const hooks = checkHooks('hooks', def.hooks);
  const locker = checkLocker('locker', def.locker);
  if (handler !== undefined) checkFunction('handler', handler);
  const spec: DefSpec = { name, tags, trigger, timezone: timezone ?? DEF_DEFAULTS.timezone, options };
  return {
    spec,
    hash: hashSpec(spec),
    description,
    scope,
    local: { handler: handler as RunHandler | undefined, hooks, locker, backoff: retry.fn },
  };
}

/**
 * The checks that depend on store time: `once` needs ≥ 1 future instant, `startAt` must not be in
 * the past unless `allowPastStart`, `stopAt` must be in the future, and cron/calendar triggers must
 * fire within 8 years.
 */
export function checkTimes(n: NormalizedDef, storeNow: number): void {
  const { trigger, options } = n.spec;
  if (trigger.kind === 'once' && !trigger.at.some((a) => a === 'now' || a >= storeNow)) {
    triggerError('once', 'every instant is in the past; at least one must be in the future');
  }
  if (typeof options.startAt === 'number' && options.startAt < storeNow && !options.allowPastStart) {
    invalid('startAt', 'is in the past (set allowPastStart to accept it)');
  }
  if (options.stopAt !== null && options.stopAt <= storeNow) invalid('stopAt', 'is in the past');
  if (
    trigger.kind === 'cron' ||
    trigger.kind === 'daily' ||
    trigger.kind === 'weekly' ||
    trigger.kind === 'monthly'
  ) {
    const anchor = typeof options.startAt === 'number' ? options.startAt : storeNow;
    const first = firstSlot({ trigger, timezone: n.spec.timezone, anchor, stopAt: options.stopAt });
    if (first === null || first > anchor + SEARCH_HORIZON_MS) {
      if (trigger.kind === 'cron')
        cronError('never-fires', 'cron: the expression never fires within 8 years');
      triggerError(trigger.kind, 'never fires within 8 years');
    }
  }
}

const START_KEYS = [
  'rescanInterval',
  'monitorInterval',
  'interruptThreshold',
  'claimLimit',
  'concurrency',
  'stopTimeout',
  'mode',
  'elector',
  'locker',
  'defaults',
  'logger',
  'signal',
];

const DEFAULT_KEYS = [
  'overlap',
  'catchUp',
  'catchUpWindow',
  'timeout',
  'stallTimeout',
  'retry',
  'maxInterruptions',
  'keepRuns',
  'hooks',
];

/** Validated start options. */
export interface ResolvedStart {
  options: EffectiveStartOptions;
  elector: Elector | undefined;
  locker: Locker | undefined;
  defaults: { stored: Partial<StoredOptions>; hooks: ScheduleHooks; backoff: BackoffFunction | undefined };
  signal: AbortSignal | undefined;
  logger: StartOptions['logger'];
}

function limitOrInfinity(field: string, value: unknown): number {
  if (value === Number.POSITIVE_INFINITY) return value;
  return positiveInt(field, value);
}

export function resolveStart(input: StartOptions | undefined): ResolvedStart {
  const o = checkOptions('options', input, START_KEYS) as StartOptions;
  const rescanInterval =
    o.rescanInterval === undefined
      ? START_DEFAULTS.rescanInterval
      : positiveInt('rescanInterval', o.rescanInterval);
  const monitorInterval =
    o.monitorInterval === undefined
      ? START_DEFAULTS.monitorInterval
      : positiveInt('monitorInterval', o.monitorInterval);
  const interruptThreshold =
    o.interruptThreshold === undefined
      ? Math.max(START_DEFAULTS.interruptThreshold, 2 * monitorInterval)
      : positiveInt('interruptThreshold', o.interruptThreshold);
  if (interruptThreshold < 2 * monitorInterval) {
    invalid('interruptThreshold', `must be at least 2 · monitorInterval (${2 * monitorInterval})`);
  }
  const claimLimit =
    o.claimLimit === undefined ? START_DEFAULTS.claimLimit : limitOrInfinity('claimLimit', o.claimLimit);
  let concurrency = START_DEFAULTS.concurrency;
  if (o.concurrency !== undefined) {
    const c = checkOptions('concurrency', o.concurrency, ['limit', 'mode']);
    concurrency = {
      limit: limitOrInfinity('concurrency.limit', c.limit),
      mode: c.mode === undefined ? 'wait' : checkEnum('concurrency.mode', c.mode, ['skip', 'wait']),
    };
  }
  const stopTimeout =
    o.stopTimeout === undefined ? START_DEFAULTS.stopTimeout : positiveInt('stopTimeout', o.stopTimeout);
  const mode = o.mode === undefined ? START_DEFAULTS.mode : checkEnum('mode', o.mode, ['all', 'leader']);
  if ('elector' in o && o.elector === undefined) invalid('elector', 'must be an Elector, got undefined');
  if ('locker' in o && o.locker === undefined) invalid('locker', 'must be a Locker, got undefined');
  const elector = checkElector('elector', o.elector);
  const locker = checkLocker('locker', o.locker);
  if (o.logger !== undefined && !isLogger(o.logger))
    invalid('logger', 'must have debug, info, warn and error methods');
  const signal = checkSignal('signal', o.signal);
  const defaults = {
    stored: {} as Partial<StoredOptions>,
    hooks: {} as ScheduleHooks,
    backoff: undefined as BackoffFunction | undefined,
  };
  if (o.defaults !== undefined) {
    const d = checkOptions('defaults', o.defaults, DEFAULT_KEYS) as ScheduleDefaults;
    if (d.overlap !== undefined)
      defaults.stored.overlap = checkEnum<'skip' | 'wait' | 'allow'>('defaults.overlap', d.overlap, [
        'skip',
        'wait',
        'allow',
      ]);
    if (d.catchUp !== undefined)
      defaults.stored.catchUp = checkEnum<'latest' | 'all'>('defaults.catchUp', d.catchUp, ['latest', 'all']);
    if (d.catchUpWindow !== undefined)
      defaults.stored.catchUpWindow = positiveInt('defaults.catchUpWindow', d.catchUpWindow);
    if (d.timeout !== undefined) defaults.stored.timeout = positiveInt('defaults.timeout', d.timeout);
    if (d.stallTimeout !== undefined)
      defaults.stored.stallTimeout = positiveInt('defaults.stallTimeout', d.stallTimeout);
    if (d.maxInterruptions !== undefined)
      defaults.stored.maxInterruptions = checkInt('defaults.maxInterruptions', d.maxInterruptions, 0);
    if (d.keepRuns !== undefined) defaults.stored.keepRuns = positiveInt('defaults.keepRuns', d.keepRuns);
    if (d.retry !== undefined) {
      const r = checkRetry('defaults.retry', d.retry);
      defaults.stored.retry = r.stored;
      defaults.backoff = r.fn;
    }
    defaults.hooks = checkHooks('defaults.hooks', d.hooks);
  }
  return {
    options: {
      rescanInterval,
      monitorInterval,
      interruptThreshold,
      claimLimit,
      concurrency,
      stopTimeout,
      mode,
    },
    elector,
    locker,
    defaults,
    signal,
    logger: o.logger,
  };
}
