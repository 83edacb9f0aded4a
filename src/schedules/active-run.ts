/**
 * A run executing on this node: its abort controller, locally reported progress, the revision of
 * our last write (every later write compares it, so an interruption by the sweeper fences us off),
 * and a write chain that serializes our writes to the record.
 */
import type { Lock } from '../cluster/interfaces.js';
import type { RunRecord } from './records.js';
import type { RunProgress } from './types.js';

/** Why Rota aborted a run's signal. */
export type AbortKind = 'interrupted' | 'shutdown' | 'session-lost' | 'removed' | 'timeout';

export class ActiveRun {
  readonly controller = new AbortController();
  abortKind: AbortKind | null = null;
  progress: RunProgress | null = null;
  /** Progress or heartbeat since the last persisted write. */
  reported = false;
  /** Store-time estimate of the last report. */
  lastReportAt: number;
  /** modRevision of our last write to the record. */
  revision: number;
  /** Set when `stop()` gave up on the run and recorded it `interrupted`. */
  fenced = false;
  /** Set once the terminal record is written: no write of ours may follow it. */
  ended = false;
  lock: Lock | null = null;
  #chain: Promise<unknown> = Promise.resolve();
  done: Promise<void>;
  #resolveDone!: () => void;

  constructor(
    readonly name: string,
    readonly runId: string,
    readonly token: number,
    public record: RunRecord,
  ) {
    this.revision = token;
    this.lastReportAt = record.startedAt;
    this.done = new Promise((resolve) => {
      this.#resolveDone = resolve;
    });
  }

  get key(): string {
    return runKeyOf(this.name, this.runId);
  }

  get signal(): AbortSignal {
    return this.controller.signal;
  }

  /** Abort the handler once, remembering why. */
  abort(kind: AbortKind, reason: Error): void {
    if (this.controller.signal.aborted) return;
    this.abortKind = kind;
    this.controller.abort(reason);
  }

  /** Run `fn` after every earlier write of this run. */
  serialize<T>(fn: () => Promise<T>): Promise<T> {
    const next = this.#chain.then(fn, fn);
    this.#chain = next.catch(() => undefined);
    return next;
  }

  finish(): void {
    this.#resolveDone();
  }
}

export function runKeyOf(name: string, runId: string): string {
  return `${name}\u0000${runId}`;
}
