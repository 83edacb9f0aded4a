/**
 * Stored records of the schedules module (schedules.md §2.1) and their keys:
 *
 * | key | content |
 * |---|---|
 * | `schedules/defs/<name>` | {@link DefRecord} |
 * | `schedules/runs/<name>/<runId>` | {@link RunRecord} |
 * | `schedules/requests/<name>/<id>` | {@link RequestRecord} |
 */
import { createHash } from 'node:crypto';
import { decodeJson } from '../core/context.js';
import { encodeName, type Keyspace } from '../core/keys.js';
import type { KeyValue } from '../store/port.js';
import type { SlotBasis, Trigger } from './slots.js';
import type { BackoffOptions, RunError, RunProgress, RunStatus } from './types.js';

/** Definition options as stored: null = not set (the claimer's defaults apply). */
export interface StoredOptions {
  overlap: 'skip' | 'wait' | 'allow' | null;
  catchUp: 'latest' | 'all' | null;
  catchUpWindow: number | null;
  timeout: number | null;
  stallTimeout: number | null;
  retry: { maxAttempts: number; backoff: Required<BackoffOptions> | null; custom: boolean } | null;
  maxInterruptions: number | null;
  keepRuns: number | null;
  limitRuns: number | null;
  intervalFromCompletion: boolean;
  startAt: number | 'now' | null;
  allowPastStart: boolean;
  stopAt: number | null;
  failureBackoff: { delay: number; maxDelay: number } | null;
  defaultNextRunIn: number | null;
}

/** The hashed identity of a definition. */
export interface DefSpec {
  name: string;
  tags: string[];
  trigger: Trigger;
  timezone: string;
  options: StoredOptions;
}

export interface PendingItem {
  runId: string;
  slotAt: number;
  attempt: number;
  kind: 'retry' | 'manual';
  /** Store time at which it becomes claimable. */
  at: number;
  /** Interruptions of this slot so far. */
  interruptions: number;
}

export interface CurrentRun {
  runId: string;
  slotAt: number;
  attempt: number;
  kind: 'slot' | 'retry' | 'manual';
  owner: string;
  sessionId: string;
  startedAt: number;
  /** Only the sweeper's timeout rule reads it. */
  timeout: number | null;
}

export interface LastRun {
  runId: string;
  slotAt: number;
  status: RunStatus;
  startedAt: number;
  endedAt: number;
}

export interface DefRecord extends DefSpec {
  v: 1;
  description: string;
  hash: string;
  anchor: number;
  state: 'active' | 'paused' | 'exhausted';
  exhaustedBy: 'limit' | 'stop' | 'once' | null;
  nextRunAt: number | null;
  pending: PendingItem[];
  currentRuns: CurrentRun[];
  runsStarted: number;
  lastRun: LastRun | null;
  /** Consecutive failures (dynamic triggers' failure backoff). */
  failures: number;
  /** Terminal run ids, oldest first, at most keepRuns (older ones are deleted in the same txn). */
  history: string[];
  createdAt: number;
  updatedAt: number;
  opId: string;
}

export interface RunRecord {
  v: 1;
  name: string;
  runId: string;
  slotAt: number;
  attempt: number;
  kind: 'slot' | 'retry' | 'manual' | 'skipped';
  owner: string | null;
  sessionId: string | null;
  status: RunStatus;
  progress: RunProgress | null;
  startedAt: number;
  updatedAt: number;
  lastReportAt: number;
  endedAt: number | null;
  error: RunError | null;
  reason: string | null;
  skipped: { from: number; to: number; count: number; reason: string } | null;
  interruptions: number;
  opId: string;
}

export interface RequestRecord {
  v: 1;
  name: string;
  id: string;
  at: number;
  opId: string;
}

/** Key builder of the module. */
export class ScheduleKeys {
  readonly defs: string;
  readonly runsRoot: string;
  readonly requestsRoot: string;

  constructor(private readonly keys: Keyspace) {
    this.defs = keys.prefix('schedules', 'defs');
    this.runsRoot = keys.prefix('schedules', 'runs');
    this.requestsRoot = keys.prefix('schedules', 'requests');
  }

  def(name: string): string {
    return this.defs + encodeName(name);
  }

  runs(name: string): string {
    return `${this.runsRoot}${encodeName(name)}/`;
  }

  run(name: string, runId: string): string {
    return this.runs(name) + encodeName(runId);
  }

  requests(name: string): string {
    return `${this.requestsRoot}${encodeName(name)}/`;
  }

  request(name: string, id: string): string {
    return this.requests(name) + encodeName(id);
  }

  /** The schedule name of a request key. */
  requestName(key: string): string {
    return this.keys.rest(this.requestsRoot, key)[0] ?? '';
  }
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

export function decodeDef(kv: KeyValue): DefRecord | undefined {
  const d = decodeJson<DefRecord>(kv.value);
  if (!isObject(d) || d.v !== 1 || typeof d.name !== 'string' || !isObject(d.trigger)) return undefined;
  if (!Array.isArray(d.currentRuns) || !Array.isArray(d.pending) || !Array.isArray(d.history))
    return undefined;
  return d;
}

export function decodeRun(kv: KeyValue): RunRecord | undefined {
  const r = decodeJson<RunRecord>(kv.value);
  if (!isObject(r) || r.v !== 1 || typeof r.runId !== 'string' || typeof r.status !== 'string')
    return undefined;
  return r;
}

export function decodeRequest(kv: KeyValue): RequestRecord | undefined {
  const r = decodeJson<RequestRecord>(kv.value);
  if (!isObject(r) || r.v !== 1 || typeof r.name !== 'string' || typeof r.id !== 'string') return undefined;
  return r;
}

/** JSON with object keys sorted, for hashing. */
function canonical(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonical).join(',')}]`;
  if (isObject(value)) {
    return `{${Object.keys(value)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${canonical(value[k])}`)
      .join(',')}}`;
  }
  return JSON.stringify(value) ?? 'null';
}

/** The identity hash: everything but description, hooks and locker. */
export function hashSpec(spec: DefSpec): string {
  return createHash('sha256').update(canonical(spec)).digest('hex').slice(0, 32);
}

/** The slot basis of a stored definition. */
export function basisOf(def: DefRecord): SlotBasis {
  return { trigger: def.trigger, timezone: def.timezone, anchor: def.anchor, stopAt: def.options.stopAt };
}

/** The run id of attempt `attempt` of a slot or manual run. */
export function runIdOf(base: string, attempt: number): string {
  return attempt <= 1 ? base : `${base}.${attempt}`;
}

/** The base id (slot time or `m-<id>`) of a run id. */
export function baseOf(runId: string): string {
  const dot = runId.lastIndexOf('.');
  return dot > 0 && !runId.startsWith('s-') ? runId.slice(0, dot) : runId;
}
