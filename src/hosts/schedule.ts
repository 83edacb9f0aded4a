/**
 * `HostSchedule`: the handle `hosts.schedule()` returns (mgmt's `Result`). It keeps this host's
 * candidacy in its desired state and streams the namespace's decisions.
 */
import type { DecisionStream } from './stream.js';
import type { HostDecision } from './types.js';

export class HostSchedule implements AsyncIterable<HostDecision> {
  #closing: Promise<void> | null = null;

  /** @internal Built by `hosts.schedule()`. */
  constructor(
    readonly namespace: string,
    readonly hostname: string,
    private readonly stream: DecisionStream,
    private readonly currentDecision: () => HostDecision,
    private readonly letGo: () => Promise<void>,
  ) {}

  /** The latest decision known to this node (filtered by present candidacies). */
  get current(): HostDecision {
    return this.currentDecision();
  }

  /** Whether the latest decision includes this host. Synchronous. */
  isScheduled(): boolean {
    return this.current.hosts.includes(this.hostname);
  }

  /** True once `close()` was called. */
  get closed(): boolean {
    return this.#closing !== null;
  }

  /**
   * The next changed decision (the first call gives the current one). `{ done: true }` once the
   * schedule is closed or the node closes; rejects with `ROTA_ABORTED` when the schedule's signal
   * aborts and `ROTA_SESSION_LOST` when the session is lost with `reconnect: false`.
   */
  next(): Promise<IteratorResult<HostDecision>> {
    return this.stream.next();
  }

  /**
   * Iterate the decisions. Leaving a `for await` loop early does not close the schedule (call
   * `close()` for that), so a later loop continues where this one stopped.
   */
  [Symbol.asyncIterator](): AsyncIterator<HostDecision> {
    return {
      next: () => this.next(),
      return: async () => ({ value: undefined, done: true }),
    };
  }

  /**
   * Apply the candidacy's close policy (persistent: kept; `reuseLease`: left to its lease;
   * otherwise deleted at once, unless another handle of this process still holds it), then end
   * the iterator. Idempotent.
   */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      try {
        await this.letGo();
      } finally {
        this.stream.end();
      }
    })();
    return this.#closing;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}
