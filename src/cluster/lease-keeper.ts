/**
 * One store lease kept alive by this node, with the local-deadline rule of cluster.md §2.1:
 * keep-alives every ttl/3; `suspect` after ttl/2 without an acknowledged one; `lost` at the send
 * time of the last acknowledged keep-alive plus `ttl − max(500, ttl/10)`. A request's send time is
 * always earlier than the moment the store renews the lease, so the local deadline passes before
 * the store can expire the lease (clocks running at about the same rate). Used by the session,
 * by locks and elections with their own `ttl`, and by other modules' leases.
 */
import type { RotaContext } from '../core/context.js';
import { isTransient } from '../core/retry.js';
import { ClosedError, isRotaError, LeaseLostError } from '../errors.js';
import type { Lease } from '../store/port.js';
import type { TimerHandle } from '../time/clock.js';

export type LeaseState = 'live' | 'suspect' | 'lost' | 'closed';

export interface LeaseKeeperHooks {
  onSuspect?: () => void;
  onLive?: () => void;
  /** Called once when the lease is lost (not when it is closed). */
  onLost?: (reason: string) => void;
}

/** The margin subtracted from the TTL for the local deadline. */
export function localMargin(ttl: number): number {
  return Math.max(500, ttl / 10);
}

export class LeaseKeeper {
  #state: LeaseState = 'live';
  #lastAckSent: number;
  #keepAliveTimer: TimerHandle | undefined;
  #watchdog: TimerHandle | undefined;
  #inFlight = false;
  readonly #controller = new AbortController();

  private constructor(
    private readonly ctx: RotaContext,
    readonly lease: Lease,
    sentAt: number,
    private readonly hooks: LeaseKeeperHooks,
    private readonly lostError: (reason: string) => Error,
    private readonly keepAlive: boolean,
  ) {
    this.#lastAckSent = sentAt;
    // Without keep-alives (autoExtend: false) the lease simply runs out at its local deadline.
    if (keepAlive) this.#armKeepAlive();
    this.#armWatchdog();
  }

  /** Grant a lease of `ttl` ms (retried within storeTimeout) and start keeping it alive. */
  static async grant(
    ctx: RotaContext,
    ttl: number,
    hooks: LeaseKeeperHooks = {},
    options: { signal?: AbortSignal; lostError?: (reason: string) => Error; keepAlive?: boolean } = {},
  ): Promise<LeaseKeeper> {
    // The send time of the attempt that succeeded: retries before it must not shorten the lease.
    let sent = ctx.clock.monotonic();
    const lease = await ctx.retry(() => {
      sent = ctx.clock.monotonic();
      return ctx.store.grant(ttl);
    }, options.signal);
    const lostError =
      options.lostError ??
      ((reason: string) => new LeaseLostError(`lease lost: ${reason}`, { detail: { reason } }));
    return new LeaseKeeper(ctx, lease, sent, hooks, lostError, options.keepAlive ?? true);
  }

  /**
   * Resume keeping alive a lease granted earlier (by this process) and left to run out: one
   * keep-alive proves it still exists (`ROTA_LEASE_NOT_FOUND` otherwise), then it is kept alive
   * like a fresh grant.
   */
  static async adopt(
    ctx: RotaContext,
    leaseId: string,
    hooks: LeaseKeeperHooks = {},
    options: { signal?: AbortSignal; lostError?: (reason: string) => Error } = {},
  ): Promise<LeaseKeeper> {
    let sent = ctx.clock.monotonic();
    const lease = await ctx.retry(() => {
      sent = ctx.clock.monotonic();
      return ctx.store.keepAlive(leaseId);
    }, options.signal);
    const lostError =
      options.lostError ??
      ((reason: string) => new LeaseLostError(`lease lost: ${reason}`, { detail: { reason } }));
    return new LeaseKeeper(ctx, lease, sent, hooks, lostError, true);
  }

  get id(): string {
    return this.lease.id;
  }

  get ttl(): number {
    return this.lease.ttl;
  }

  get state(): LeaseState {
    return this.#state;
  }

  /** True while live or suspect. */
  get held(): boolean {
    return this.#state === 'live' || this.#state === 'suspect';
  }

  /** Aborts when the lease is lost (reason from `lostError`) or closed (`ROTA_CLOSED`). */
  get signal(): AbortSignal {
    return this.#controller.signal;
  }

  /** Local monotonic time at which the lease counts as lost without another acknowledged keep-alive. */
  get localDeadline(): number {
    return this.#lastAckSent + this.lease.ttl - localMargin(this.lease.ttl);
  }

  /** Local monotonic send time of the last acknowledged keep-alive (or of the grant). */
  get lastAckSent(): number {
    return this.#lastAckSent;
  }

  #ended(): boolean {
    return this.#state === 'lost' || this.#state === 'closed';
  }

  /**
   * Keep-alives are due `ttl/3` after the send time of the last acknowledged one (or of the grant),
   * so a slow grant or a slow answer shortens the wait instead of eating the safety margin.
   */
  #armKeepAlive(from = this.#lastAckSent): void {
    this.ctx.clock.clearTimeout(this.#keepAliveTimer);
    const delay = Math.max(0, from + this.lease.ttl / 3 - this.ctx.clock.monotonic());
    this.#keepAliveTimer = this.ctx.clock.setTimeout(() => void this.#keepAlive(), delay);
  }

  async #keepAlive(): Promise<void> {
    if (this.#ended()) return;
    const sent = this.ctx.clock.monotonic();
    // The next attempt follows this one's send time, even if this answer never comes.
    this.#armKeepAlive(sent);
    if (this.#inFlight) return;
    this.#inFlight = true;
    try {
      await this.ctx.store.keepAlive(this.lease.id);
      if (this.#ended()) return;
      // Only a keep-alive sent before the deadline may extend it.
      if (sent <= this.localDeadline) {
        this.#lastAckSent = Math.max(this.#lastAckSent, sent);
        if (this.#state === 'suspect') {
          this.#state = 'live';
          this.hooks.onLive?.();
        }
        this.#armWatchdog();
        this.#armKeepAlive();
      }
    } catch (err) {
      if (this.#ended()) return;
      if (isRotaError(err, 'ROTA_LEASE_NOT_FOUND')) this.lose('the store reports the lease gone');
      else if (!isTransient(err) && !isRotaError(err, 'ROTA_CLOSED')) {
        this.ctx.logger.warn('lease keep-alive failed', { error: err, lease: this.lease.id });
      }
    } finally {
      this.#inFlight = false;
    }
  }

  #armWatchdog(): void {
    this.ctx.clock.clearTimeout(this.#watchdog);
    const now = this.ctx.clock.monotonic();
    const suspectAt = this.#lastAckSent + this.lease.ttl / 2;
    const next = this.keepAlive && this.#state === 'live' && suspectAt > now ? suspectAt : this.localDeadline;
    this.#watchdog = this.ctx.clock.setTimeout(() => {
      if (this.#ended()) return;
      const t = this.ctx.clock.monotonic();
      if (t >= this.localDeadline) {
        this.lose('no keep-alive acknowledged before the local deadline');
        return;
      }
      if (this.keepAlive && t >= this.#lastAckSent + this.lease.ttl / 2 && this.#state === 'live') {
        this.#state = 'suspect';
        this.hooks.onSuspect?.();
      }
      this.#armWatchdog();
    }, next - now);
  }

  /** Treat the lease as lost now (also used by test harnesses). */
  lose(reason: string): void {
    if (this.#ended()) return;
    this.#state = 'lost';
    this.#stopTimers();
    this.#controller.abort(this.lostError(reason));
    this.hooks.onLost?.(reason);
  }

  #stopTimers(): void {
    this.ctx.clock.clearTimeout(this.#keepAliveTimer);
    this.ctx.clock.clearTimeout(this.#watchdog);
  }

  /** Stop keeping the lease alive without revoking it (it expires by itself). */
  abandon(): void {
    if (this.#ended()) return;
    this.#state = 'closed';
    this.#stopTimers();
    this.#controller.abort(new ClosedError('the lease was released'));
  }

  /** Stop and revoke the lease (its keys are deleted at once). A failed revoke is logged. */
  async revoke(): Promise<void> {
    // Even a lease lost locally may still be alive at the store: revoking frees its keys sooner.
    this.abandon();
    try {
      await this.ctx.store.revoke(this.lease.id);
    } catch (err) {
      this.ctx.logger.debug('lease revoke failed; it will expire by itself', {
        error: err,
        lease: this.lease.id,
      });
    }
  }
}
