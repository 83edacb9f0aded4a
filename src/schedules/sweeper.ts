/**
 * The sweeper (schedules.md §2.6): runs on the leader of `rota:schedules-sweeper`, every
 * `monitorInterval` and at once when a member leaves. For each running run (from the definitions'
 * `currentRuns`) it interrupts:
 *   (a) runs whose owner session is gone (member absent or with another sessionId, confirmed by a
 *       fresh read of the member key);
 *   (b) runs whose `updatedAt` (the owner monitor's liveness bump) is older than `interruptThreshold`;
 *   (c) runs that reported nothing for `stallTimeout` (when set);
 *   (d) runs past their `timeout` (recorded `failed` with `ROTA_RUN_TIMEOUT`).
 * It also emits `schedule:orphaned` once for a definition due longer than `interruptThreshold`
 * whose name no live member advertises.
 */
import type { Leadership } from '../cluster/election.js';
import { decodeMember, type Member } from '../cluster/members.js';
import { encodeName } from '../core/keys.js';
import type { Logger } from '../core/logger.js';
import { decodeRun } from './records.js';
import type { Runner, RunnerDeps } from './runner.js';
import type { EffectiveStartOptions } from './types.js';

export class Sweeper {
  #wake: (() => void) | null = null;
  #orphaned = new Set<string>();
  #off: (() => void) | null = null;

  constructor(
    private readonly d: RunnerDeps,
    private readonly runner: Runner,
    private readonly options: EffectiveStartOptions,
    private readonly logger: Logger,
  ) {}

  start(signal: AbortSignal): void {
    this.#off = this.d.ctx.events.on('member:left', () => this.#wake?.());
    signal.addEventListener('abort', () => this.#off?.(), { once: true });
    void this.d.cluster
      .election('rota:schedules-sweeper')
      .lead((leadership) => this.#loop(leadership, signal), { signal })
      .catch((err) => this.logger.warn('schedules sweeper election stopped', { error: err }));
  }

  async #loop(leadership: Leadership, signal: AbortSignal): Promise<void> {
    const { clock } = this.d.ctx;
    while (!leadership.signal.aborted && !signal.aborted) {
      try {
        await this.sweep();
      } catch (err) {
        this.logger.debug('schedules sweep failed', { error: err });
      }
      await new Promise<void>((resolve) => {
        const timer = clock.setTimeout(done, this.options.monitorInterval);
        const onAbort = () => done();
        function done() {
          clock.clearTimeout(timer);
          leadership.signal.removeEventListener('abort', onAbort);
          resolve();
        }
        this.#wake = done;
        leadership.signal.addEventListener('abort', onAbort, { once: true });
      });
      this.#wake = null;
    }
  }

  /** One sweep (the leader calls this periodically; exposed for tests). */
  async sweep(): Promise<number> {
    const { ctx, keys, cluster } = this.d;
    const storeNow = await ctx.retry(() => ctx.store.now());
    let interrupted = 0;
    const members = cluster.membership;
    const live = await members.list();
    for (const entry of [...this.runner.defs.entries.values()]) {
      const def = entry.value;
      const eff = this.runner.effectiveOf(def);
      for (const cr of def.currentRuns) {
        let reason: string | null = null;
        let timeout = false;
        const cached = members.get(cr.owner);
        if (!cached || cached.sessionId !== cr.sessionId) {
          // The cache may lag: confirm with the member key as of now.
          const memberKey = ctx.keys.key('cluster', 'members', encodeName(cr.owner));
          const { kv } = await ctx.retry(() => ctx.store.get(memberKey));
          const fresh = kv ? decodeMember(kv) : undefined;
          if (!fresh || fresh.sessionId !== cr.sessionId) reason = 'session-lost';
        }
        const oldest = Math.min(
          this.options.interruptThreshold,
          eff.stallTimeout ?? Number.POSITIVE_INFINITY,
          cr.timeout ?? Number.POSITIVE_INFINITY,
        );
        if (reason === null && cr.startedAt < storeNow - oldest) {
          const { kv } = await ctx.retry(() => ctx.store.get(keys.run(def.name, cr.runId)));
          const run = kv ? decodeRun(kv) : undefined;
          if (run && run.status === 'running') {
            if (cr.timeout !== null && run.startedAt + cr.timeout < storeNow) {
              reason = 'timeout';
              timeout = true;
            } else if (run.updatedAt < storeNow - this.options.interruptThreshold) reason = 'stale';
            else if (eff.stallTimeout !== null && run.lastReportAt < storeNow - eff.stallTimeout)
              reason = 'stalled';
          }
        }
        if (reason === null) continue;
        const done = await this.runner.interrupt(def.name, cr.runId, reason, { timeout }).catch((err) => {
          this.logger.debug('schedules: interrupt failed', { error: err });
          return null;
        });
        if (done) {
          interrupted++;
          if (done.status === 'interrupted') {
            this.d.events.emit('run:interrupted', {
              name: def.name,
              runId: cr.runId,
              slotAt: cr.slotAt,
              reason,
            });
          } else {
            this.d.events.emit('run:failed', {
              name: def.name,
              runId: cr.runId,
              slotAt: cr.slotAt,
              error: new Error(done.error?.message ?? reason),
            });
          }
        }
      }
      this.#checkOrphan(def.name, def.state, def.nextRunAt, storeNow, live);
    }
    return interrupted;
  }

  #checkOrphan(
    name: string,
    state: string,
    nextRunAt: number | null,
    storeNow: number,
    live: Member[],
  ): void {
    const overdue =
      state === 'active' && nextRunAt !== null && nextRunAt < storeNow - this.options.interruptThreshold;
    if (!overdue || live.some((m) => m.capabilities?.schedules?.includes(name))) {
      this.#orphaned.delete(name);
      return;
    }
    if (this.#orphaned.has(name)) return;
    this.#orphaned.add(name);
    this.d.events.emit('schedule:orphaned', {
      name,
      nextRunAt: nextRunAt as number,
      dueForMs: storeNow - (nextRunAt as number),
    });
  }
}
