/**
 * The converger (tasks.md §2.6): on the leader of `rota:tasks-converger`, every
 * `convergeInterval`, one pass of `store.sweep()` (repeated while it reports `more`) plus the
 * module-side rule: delete undecodable records this node has seen (`task:malformed`). Every store
 * rule is a fenced transition evaluated by store time, so passes are idempotent and a lost race
 * simply leaves the task to the next pass. `tasks.converge()` runs one pass on demand.
 */
import type { Cluster } from '../cluster/index.js';
import { StoreError } from '../errors.js';
import type { QueueItem, SweepResult } from '../store/port.js';
import type { TimerHandle } from '../time/clock.js';
import { sleep } from '../time/clock.js';
import type { TasksHost } from './host.js';
import type { ConvergeReport } from './types.js';

export const CONVERGER_ELECTION = 'rota:tasks-converger';
/** Sweep calls per pass at most (each handles up to 1 000 tasks per rule). */
const MAX_SWEEPS = 100;

/** Take one given completed task into `resolving` (claim restricted to its id). */
export async function claimForResolution(
  host: TasksHost,
  queue: string,
  id: string,
  leaseTtl: number,
  signal?: AbortSignal,
): Promise<QueueItem | null> {
  const { ctx } = host;
  const res = await ctx.retry(
    () => ctx.store.claim({ queue, owner: ctx.nodeId, limit: 1, leaseTtl, from: 'completed', ids: [id] }),
    signal,
  );
  const foreign = res.items.filter((i) => i.id !== id);
  if (foreign.length > 0) {
    // A backend that ignores `ids` would hand out other tasks: give them back and say so.
    await ctx.store
      .settle(
        foreign.map((i) => ({
          op: 'unresolve' as const,
          id: i.id,
          token: i.token as number,
          owner: ctx.nodeId,
        })),
      )
      .catch(() => undefined);
    throw new StoreError('the store does not support claiming given ids (ClaimRequest.ids)');
  }
  return res.items[0] ?? null;
}

export interface ConvergerStats {
  /** rota_task_converge_runs_total */
  readonly runs: number;
  /** rota_task_converge_duration_ms of the last pass */
  readonly lastDurationMs: number;
  /** rota_task_converge_transitions_total */
  readonly transitions: number;
  /** rota_task_converge_pruned_total */
  readonly pruned: number;
}

export class Converger {
  #runs = 0;
  #transitions = 0;
  #pruned = 0;
  #lastDurationMs = 0;
  readonly #malformed = new Map<string, { queue: string; reason: string }>();
  readonly #stop = new AbortController();
  #started = false;
  #localTimer: TimerHandle | undefined;
  #passing: Promise<ConvergeReport> | null = null;

  constructor(
    private readonly host: TasksHost,
    private readonly cluster: Cluster,
  ) {}

  get stats(): ConvergerStats {
    return {
      runs: this.#runs,
      lastDurationMs: this.#lastDurationMs,
      transitions: this.#transitions,
      pruned: this.#pruned,
    };
  }

  /** Campaign for the converger election (once); passes run while this node leads. */
  start(): void {
    if (this.#started || !this.host.options.converger || this.host.ctx.closed) return;
    this.#started = true;
    const { ctx } = this.host;
    const election = this.cluster.election(CONVERGER_ELECTION);
    void election
      .lead(
        async (leadership) => {
          while (!leadership.signal.aborted && !this.#stop.signal.aborted) {
            await this.pass().catch((err) => {
              if (!this.#stop.signal.aborted) ctx.logger.warn('converger pass failed', { error: err });
            });
            await sleep(ctx.clock, this.host.options.convergeInterval, leadership.signal).catch(
              () => undefined,
            );
          }
        },
        { signal: this.#stop.signal },
      )
      .catch((err) => {
        if (!ctx.closed) ctx.logger.warn('the tasks converger stopped campaigning', { error: err });
      });
  }

  /** Remember an undecodable task; a pass deletes it (on a follower, a local pass soon does). */
  reportMalformed(id: string, queue: string, reason: string): void {
    if (this.#malformed.has(id)) return;
    this.#malformed.set(id, { queue, reason });
    if (this.#localTimer !== undefined || this.host.ctx.closed) return;
    this.#localTimer = this.host.ctx.clock.setTimeout(() => {
      this.#localTimer = undefined;
      if (this.#malformed.size > 0) void this.#deleteMalformed().catch(() => undefined);
    }, this.host.options.convergeInterval);
  }

  /** One pass now (concurrent callers share it). */
  pass(): Promise<ConvergeReport> {
    this.#passing ??= this.#pass().finally(() => {
      this.#passing = null;
    });
    return this.#passing;
  }

  async #pass(): Promise<ConvergeReport> {
    const { ctx, options } = this.host;
    const t0 = ctx.clock.monotonic();
    const sum: { -readonly [K in Exclude<keyof SweepResult, 'more'>]: number } = {
      reclaimed: 0,
      stalled: 0,
      unstarted: 0,
      timedOut: 0,
      unclaimed: 0,
      unresolved: 0,
      pruned: 0,
      purged: 0,
    };
    for (let i = 0; i < MAX_SWEEPS; i++) {
      const r = await ctx.retry(
        () =>
          ctx.store.sweep({
            startTimeout: options.startTimeout,
            abortGrace: options.abortGrace,
          }),
        this.#stop.signal,
      );
      for (const k of Object.keys(sum) as (keyof typeof sum)[]) sum[k] += r[k];
      if (!r.more) break;
    }
    const malformed = await this.#deleteMalformed();
    const transitions =
      sum.reclaimed + sum.stalled + sum.unstarted + sum.timedOut + sum.unclaimed + sum.unresolved;
    const pruned = sum.pruned + malformed;
    const durationMs = ctx.clock.monotonic() - t0;
    this.#runs++;
    this.#transitions += transitions;
    this.#pruned += pruned;
    this.#lastDurationMs = durationMs;
    const report: ConvergeReport = {
      transitions,
      pruned,
      durationMs,
      reclaimed: sum.reclaimed,
      stalled: sum.stalled,
      unstarted: sum.unstarted,
      timedOut: sum.timedOut,
      unclaimed: sum.unclaimed,
      unresolved: sum.unresolved,
      malformed,
    };
    const events = this.host.events;
    if (sum.stalled > 0) events.emit('task:stalled', { count: sum.stalled });
    if (pruned > 0) events.emit('task:pruned', { count: pruned });
    events.emit('converge:completed', report);
    return report;
  }

  /** Delete the malformed records seen so far; returns how many were deleted. */
  async #deleteMalformed(): Promise<number> {
    const { ctx } = this.host;
    let deleted = 0;
    for (const [id, { queue, reason }] of [...this.#malformed]) {
      this.#malformed.delete(id);
      try {
        let item = await ctx.retry(() => ctx.store.getItem(id));
        if (!item) continue;
        if (item.state === 'pending' || item.state === 'claimed' || item.state === 'running') {
          await ctx.retry(() =>
            ctx.store.settle([
              {
                op: 'abort',
                id,
                error: { code: 'ROTA_STORE_CORRUPT', message: `undecodable task: ${reason}` },
              },
            ]),
          );
          item = await ctx.retry(() => ctx.store.getItem(id));
        }
        if (item?.state !== 'completed') continue;
        const claimed = await claimForResolution(this.host, queue, id, this.host.options.resolveLeaseTtl);
        if (!claimed) continue;
        const [res] = await ctx.retry(() =>
          ctx.store.settle([{ op: 'resolve', id, token: claimed.token as number, owner: ctx.nodeId }]),
        );
        if (res?.status !== 'ok') continue;
        deleted++;
        this.host.events.emit('task:malformed', { id, queue, reason });
      } catch (err) {
        ctx.logger.warn(`could not delete the malformed task ${id}`, { error: err });
      }
    }
    return deleted;
  }

  close(): void {
    this.#stop.abort();
    this.host.ctx.clock.clearTimeout(this.#localTimer);
  }
}
