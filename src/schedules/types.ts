/**
 * Public types of the schedules module (schedules.md): definitions, handlers, run contexts, the
 * information returned by queries, start options and events.
 */
import type { Elector, Locker } from '../cluster/interfaces.js';
import type { Logger } from '../core/logger.js';
import type { Trigger } from './slots.js';

/** An at-time of a calendar trigger: `'HH:MM'`, `'HH:MM:SS'` or `{ hour, minute?, second? }`. */
export type AtTime = string | { hour: number; minute?: number; second?: number };

/** An instant: a `Date` or epoch milliseconds. */
export type Instant = Date | number;

/** Retry backoff (the shape of tasks.md §2.4). */
export interface BackoffOptions {
  /** `'exponential'` (default) or `'fixed'`. */
  type?: 'fixed' | 'exponential';
  /** First delay in ms. Default 1 000. */
  delay?: number;
  /** Growth per attempt (exponential). Default 2. */
  factor?: number;
  /** Largest delay in ms. Default 3 600 000. */
  maxDelay?: number;
  /** Random reduction in [0, 1]: `delay · (1 − jitter · random())`. Default 0.2. */
  jitter?: number;
}

/** A custom backoff: `(attempt, error) → ms`. Kept on the registering node only (not persisted). */
export type BackoffFunction = (attempt: number, error: unknown) => number;

/** Retries of a failed run of the same slot. */
export interface RetryPolicy {
  /** Total attempts of one slot, including the first. Default 1 (no retry). */
  maxAttempts?: number;
  backoff?: BackoffOptions | BackoffFunction;
}

/** Progress of a run (Boundary's `JobStatus`). Integers ≥ 0, `completed ≤ total`. */
export interface RunProgress {
  completed: number;
  total: number;
  retries?: number;
}

/** What a handler receives. */
export interface RunContext {
  readonly name: string;
  /** `<slotAt>`, `<slotAt>.<attempt>`, or `m-<id>` for manual runs. */
  readonly runId: string;
  /** The slot's store time (manual runs: when the request was converted). */
  readonly slotAt: number;
  /** 1 for the first attempt of a slot. */
  readonly attempt: number;
  readonly kind: 'slot' | 'retry' | 'manual';
  /** Fencing token of the run (the run record's createRevision): use it for idempotency. */
  readonly token: number;
  /** Aborts on interruption, timeout, `stop()`, session loss or removal. */
  readonly signal: AbortSignal;
  /** The runner's `interruptThreshold`, for handlers that pace their reports. */
  readonly interruptThreshold: number;
  /** The node running it. */
  readonly nodeId: string;
  /**
   * Report progress; validated at once (`ROTA_INVALID_ARGUMENT`, nothing changes), persisted at the
   * next monitor tick, or now with `{ flush: true }`. Counts as liveness.
   */
  progress(progress: RunProgress, options?: { flush?: boolean }): Promise<void>;
  /** Liveness without progress (for `stallTimeout`). */
  heartbeat(): void;
}

/** A handler's result: dynamic triggers read `nextRunIn` (ms after completion). */
export type RunResult = undefined | { nextRunIn?: number };

/** The code that runs for each slot. */
export type RunHandler = (ctx: RunContext) => RunResult | Promise<RunResult> | void | Promise<void>;

/** What `onClaimLost` receives. */
export interface ClaimLostInfo {
  readonly name: string;
  readonly slotAt: number;
  readonly runId: string;
  /** `taken` (another node claimed it) or `locker` (the custom locker refused). */
  readonly reason: 'taken' | 'locker';
}

/** gocron's event listeners. Hooks must not rely on throwing, except `beforeRun` (throw = skip). */
export interface ScheduleHooks {
  /** Before the handler; a throw skips the run (recorded `skipped`, reason `hook`). */
  beforeRun?: (ctx: RunContext) => unknown;
  /** After a successful run. */
  afterRun?: (ctx: RunContext) => unknown;
  /** After a failed run, with the error (non-`Error` throws wrapped as `ROTA_HANDLER_FAILED`). */
  afterRunError?: (ctx: RunContext, error: Error) => unknown;
  /** This node lost the slot to another node, or its locker refused. */
  onClaimLost?: (info: ClaimLostInfo) => unknown;
}

/**
 * A schedule definition. Exactly one trigger key (`every`, `everyRandom`, `cron`, `daily`, `weekly`,
 * `monthly`, `once`, `dynamic`). Everything but `description`, `hooks` and `locker` is part of the
 * definition's identity hash.
 */
export interface ScheduleDef {
  /** Unique name (cluster.md §5 name rules). */
  name: string;
  /** Free text, ≤ 1 024 chars. Default `''`. */
  description?: string;
  /** Tags for `list({ tags })` and `removeByTags`. Default `[]`. */
  tags?: string[];

  /** Every `every` ms: slots `anchor + k·every`. */
  every?: number;
  /** Lattice origin of `every` (default: registration time, first slot one period later). */
  anchor?: Instant;
  /** Random gaps in `[min, max)` ms, drawn once by the claimer. */
  everyRandom?: { min: number; max: number };
  /** Cron: 5 or 6 fields, descriptors (`@daily`, `@every 1h30m`), `CRON_TZ=`/`TZ=` prefix. */
  cron?: string;
  /** `true`: 6 fields required; `false`: 5 fields; default: either. */
  seconds?: boolean;
  /** Every `interval` days at the given times. */
  daily?: { interval?: number; at: AtTime | AtTime[] };
  /** Every `interval` weeks (weeks start on Sunday) on `weekdays` (0 = Sunday) at the times. */
  weekly?: { interval?: number; weekdays: number[]; at: AtTime | AtTime[] };
  /** Every `interval` months on `days` (1..31, −1 = last day) at the times. */
  monthly?: { interval?: number; days: number[]; at: AtTime | AtTime[] };
  /** Once: now, at an instant, or at each listed instant (past entries dropped; ≥ 1 future). */
  once?: 'now' | Instant | Instant[];
  /** Boundary's dynamic next run: the handler returns `{ nextRunIn }`. */
  dynamic?: { firstRunIn?: number };

  /** IANA zone of cron and calendar triggers. Default `'UTC'`. */
  timezone?: string;
  /** First slot not before this (`'now'`: run at once). Must be in the future unless `allowPastStart`. */
  startAt?: 'now' | Instant;
  allowPastStart?: boolean;
  /** No slot after this instant; then the schedule is exhausted. */
  stopAt?: Instant;
  /** Exhausted after this many started slot runs (skipped runs don't count). */
  limitRuns?: number;
  /** While a run is active: `'skip'` (default) the slot, `'wait'` for it, or `'allow'` overlap. */
  overlap?: 'skip' | 'wait' | 'allow';
  /** Several slots due at once: run the `'latest'` (default) and skip the rest, or run `'all'`. */
  catchUp?: 'latest' | 'all';
  /** Due slots older than this many ms are skipped. Default: no limit. */
  catchUpWindow?: number;
  /** `every`/`everyRandom`: next slot = end of the previous run + period. Default false. */
  intervalFromCompletion?: boolean;
  /** Abort the handler and fail the run (`ROTA_RUN_TIMEOUT`) after this many ms. Default none. */
  timeout?: number;
  /** Interrupt a run that reported neither progress nor heartbeat for this long. Default off. */
  stallTimeout?: number;
  /** Retries of a failed slot. Default `{ maxAttempts: 1 }`. */
  retry?: RetryPolicy;
  /** Re-runs of an interrupted slot before it is recorded failed. Default 3. */
  maxInterruptions?: number;
  /** Terminal run records kept. Default 10. */
  keepRuns?: number;
  /** Dynamic triggers: delay after a failure, doubling from `delay` up to `maxDelay`. Default 1 000 … 60 000. */
  failureBackoff?: { delay?: number; maxDelay?: number };
  /** Dynamic triggers: next run when the handler returns no valid `nextRunIn`. Default 60 000. */
  defaultNextRunIn?: number;
  /** `'cluster'` (default): persisted, once per slot. `'local'`: in memory, every registering node runs it. */
  scope?: 'cluster' | 'local';
  /** Listeners of this schedule's runs (local to the registering node). */
  hooks?: ScheduleHooks;
  /** A custom per-schedule locker, asked for `<name>@<slotAt>` before each claim (local). */
  locker?: Locker;
}

/** A patch for `update(name, patch)`: any definition field but `name`. A trigger key replaces the trigger. */
export type SchedulePatch = Partial<Omit<ScheduleDef, 'name'>>;

/** Run statuses (schedules.md §2.2); `requested` = a `trigger()` request not yet converted. */
export type RunStatus = 'running' | 'succeeded' | 'failed' | 'interrupted' | 'skipped' | 'requested';

export interface RunError {
  code: string;
  message: string;
}

/** A run record as returned by `runs()`, `run()` and `trigger()`. */
export interface RunInfo {
  readonly name: string;
  readonly runId: string;
  readonly slotAt: number;
  readonly attempt: number;
  readonly kind: 'slot' | 'retry' | 'manual' | 'skipped';
  readonly status: RunStatus;
  readonly owner: string | null;
  readonly sessionId: string | null;
  readonly progress: RunProgress | null;
  readonly startedAt: number | null;
  readonly updatedAt: number | null;
  readonly lastReportAt: number | null;
  readonly endedAt: number | null;
  readonly error: RunError | null;
  /** Interruption reason (`session-lost`, `stale`, `stalled`, `shutdown`, `removed`, `external`). */
  readonly reason: string | null;
  /** Skipped range: `from`/`to` slots, exact `count` (lower bound past 100 000), `reason`. */
  readonly skipped: { from: number; to: number; count: number; reason: string } | null;
  /** Token of the run (createRevision of its record); 0 for requests. */
  readonly token: number;
}

/** A schedule as returned by `get`, `list`, `register`. */
export interface ScheduleInfo {
  readonly name: string;
  readonly description: string;
  readonly tags: string[];
  readonly trigger: Trigger;
  readonly timezone: string;
  readonly scope: 'cluster' | 'local';
  readonly state: 'active' | 'paused' | 'exhausted';
  /** Store time of the next due slot; null when exhausted, paused or decided at completion. */
  readonly nextRunAt: number | null;
  readonly anchor: number;
  readonly lastRun: {
    runId: string;
    slotAt: number;
    status: RunStatus;
    startedAt: number;
    endedAt: number;
  } | null;
  readonly runsStarted: number;
  readonly currentRuns: { runId: string; slotAt: number; owner: string; startedAt: number }[];
  readonly pending: { runId: string; slotAt: number; attempt: number; at: number }[];
  readonly hash: string;
  readonly createdAt: number;
  readonly updatedAt: number;
}

/** `start()` options. Every option has a default. */
export interface StartOptions {
  /** Safety re-scan of the local cache, ms. Default 60 000 (runs are timer/watch driven). */
  rescanInterval?: number;
  /** Progress persistence + liveness bump + sweep period, ms. Default 30 000. */
  monitorInterval?: number;
  /** A run with no liveness bump this long is interrupted, ms (≥ 2 · monitorInterval). Default 300 000. */
  interruptThreshold?: number;
  /** Max claims per pass. Default Infinity. */
  claimLimit?: number;
  /** Per-node cap on running runs: `'skip'` leaves due slots to others, `'wait'` queues them. Default none. */
  concurrency?: { limit: number; mode?: 'skip' | 'wait' };
  /** How long `stop()` waits for runs, ms. Default 10 000. */
  stopTimeout?: number;
  /** `'all'` (default): every node claims; `'leader'`: only the leader of `rota:schedules`. */
  mode?: 'all' | 'leader';
  /** Extra gate: claim only while `elector.isLeader()` resolves true. */
  elector?: Elector;
  /** Extra gate: a lock on `<name>@<slotAt>` before each claim (per-schedule `locker` wins). */
  locker?: Locker;
  /** Fallbacks for definition fields left unset (per-definition values win). */
  defaults?: ScheduleDefaults;
  /** Where the runner logs. Default: the node's logger. */
  logger?: Logger;
  /** Aborting it stops the runner (like `stop()`). */
  signal?: AbortSignal;
}

/** Definition fields `start({ defaults })` may supply. */
export type ScheduleDefaults = Pick<
  ScheduleDef,
  | 'overlap'
  | 'catchUp'
  | 'catchUpWindow'
  | 'timeout'
  | 'stallTimeout'
  | 'retry'
  | 'maxInterruptions'
  | 'keepRuns'
  | 'hooks'
>;

/** The effective start options (`schedules.options`). */
export interface EffectiveStartOptions {
  readonly rescanInterval: number;
  readonly monitorInterval: number;
  readonly interruptThreshold: number;
  readonly claimLimit: number;
  readonly concurrency: { readonly limit: number; readonly mode: 'skip' | 'wait' };
  readonly stopTimeout: number;
  readonly mode: 'all' | 'leader';
}

export const START_DEFAULTS: EffectiveStartOptions = {
  rescanInterval: 60_000,
  monitorInterval: 30_000,
  interruptThreshold: 300_000,
  claimLimit: Number.POSITIVE_INFINITY,
  concurrency: { limit: Number.POSITIVE_INFINITY, mode: 'wait' },
  stopTimeout: 10_000,
  mode: 'all',
};

/** Built-in defaults of definition options. */
export const DEF_DEFAULTS = {
  overlap: 'skip',
  catchUp: 'latest',
  catchUpWindow: Number.POSITIVE_INFINITY,
  maxInterruptions: 3,
  keepRuns: 10,
  retryMaxAttempts: 1,
  failureBackoff: { delay: 1000, maxDelay: 60_000 },
  defaultNextRunIn: 60_000,
  timezone: 'UTC',
} as const;

/** Events of the schedules module (schedules.md §2.8), emitted on `rota.events` and `schedules.events`. */
export interface ScheduleEventMap {
  'scheduler:started': { nodeId: string };
  'scheduler:stopped': { nodeId: string };
  'scheduler:closed': { nodeId: string };
  'schedule:registered': { name: string; nextRunAt: number | null };
  'schedule:updated': { name: string; nextRunAt: number | null };
  'schedule:definition-changed': { name: string; nextRunAt: number | null };
  'schedule:removed': { name: string };
  'schedule:paused': { name: string };
  'schedule:resumed': { name: string; nextRunAt: number | null };
  'schedule:exhausted': { name: string; reason: 'limit' | 'stop' | 'once' };
  'schedule:skipped': {
    name: string;
    runId: string;
    from: number;
    to: number;
    count: number;
    reason: string;
  };
  'schedule:claim-lost': { name: string; slotAt: number; runId: string; reason: 'taken' | 'locker' };
  'schedule:orphaned': { name: string; nextRunAt: number; dueForMs: number };
  'schedule:invalid-next-run': { name: string; runId: string; value: unknown };
  'run:starting': { name: string; runId: string; slotAt: number; attempt: number; kind: string };
  'run:started': { name: string; runId: string; slotAt: number; startedAt: number; delayMs: number };
  'run:progress': { name: string; runId: string; progress: RunProgress };
  'run:completed': { name: string; runId: string; slotAt: number; durationMs: number };
  'run:failed': { name: string; runId: string; slotAt: number; error: Error };
  'run:interrupted': { name: string; runId: string; slotAt: number; reason: string };
  'run:late-completion': { name: string; runId: string; status: string };
  'concurrency:limited': { name: string; limit: number; running: number };
}
