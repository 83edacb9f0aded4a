/** The pool's events (cluster.md §5: typed, `noun:verb`, on `rota.events` and on the pool node). */
import type { StopReason } from './handler.js';
import type { StoredError } from './records.js';

export interface PoolEventMap {
  'pool:joined': { pool: string; nodeId: string; clientOnly: boolean };
  'pool:closed': { pool: string; nodeId: string };
  'pool:shutdown': { pool: string; nodeId: string };
  /** The node's pool lease was lost: its jobs were stopped locally (`leaseLost`). */
  'pool:lease-lost': { pool: string; nodeId: string; reason: string };
  /** After a lost lease, the node registered again with a new lease. */
  'pool:recovered': { pool: string; nodeId: string };
  'pool:plan-failed': { pool: string; producer: string; error: unknown };
  'worker:added': { pool: string; workerId: string; nodeId: string };
  'worker:removed': { pool: string; workerId: string; nodeId: string };
  'job:started': {
    pool: string;
    key: string;
    workerId: string;
    nodeId: string;
    token: number;
    requeued: boolean;
  };
  'job:stopped': { pool: string; key: string; workerId: string; nodeId: string; reason: StopReason };
  /** A running job was stopped and released because its target moved to another worker. */
  'job:rebalanced': { pool: string; key: string; workerId: string; nodeId: string; token: number };
  'job:start-failed': { pool: string; key: string; workerId: string; error: StoredError; attempt: number };
  /** A job gave up starting: a failed first start, or `maxStartAttempts` failed requeued starts. */
  'job:failed': { pool: string; key: string; error: StoredError };
  'job:stop-failed': { pool: string; key: string; workerId: string; error: StoredError; reason: StopReason };
  'notification:unsupported': { pool: string; key: string; workerId: string };
  'notification:expired': { pool: string; key: string; id: string };
}

declare module '../core/events.js' {
  interface RotaEventMap extends PoolEventMap {}
}
