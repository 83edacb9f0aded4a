/** What a pool node shares with its workers, ownerships and reconciler (internal). */
import type { LeaseKeeper } from '../cluster/lease-keeper.js';
import type { RotaContext } from '../core/context.js';
import type { Logger } from '../core/logger.js';
import type { PoolEventMap } from './events.js';
import type { ResolvedPoolOptions } from './options.js';
import type { Ownership } from './ownership.js';
import type { Placement } from './placement.js';
import type { PoolKeys } from './records.js';
import type { PoolState } from './state.js';
import type { WorkerImpl } from './worker.js';

export interface PoolHost {
  readonly ctx: RotaContext;
  readonly pool: string;
  readonly nodeId: string;
  readonly keys: PoolKeys;
  readonly options: ResolvedPoolOptions;
  readonly logger: Logger;
  readonly state: PoolState;
  readonly placement: Placement;
  /** Local ownerships by job key (one per key; kept until its last operation settled). */
  readonly owned: Map<string, Ownership>;
  /** Local workers by id. */
  readonly workers: Map<string, WorkerImpl>;
  /** The current pool lease while it is held; null while recovering or closed. */
  lease(): LeaseKeeper | null;
  /** True while the node is shutting down (stop acquiring, stop with reason `shutdown`). */
  readonly shuttingDown: boolean;
  /** Aborts when the pool node closes for good. */
  readonly closedSignal: AbortSignal;
  emit<K extends keyof PoolEventMap>(name: K, payload: PoolEventMap[K]): void;
  /** An ownership ended locally: forget it and reconcile the key again. */
  released(ownership: Ownership): void;
  /** Ask for a reconcile pass after `delayMs` (coalesced; default: at once). */
  poke(delayMs?: number): void;
}
