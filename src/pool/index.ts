/**
 * The pool module (pool.md): long-running keyed jobs placed on workers by rendezvous hashing,
 * moved when workers join or leave, restarted elsewhere when a node dies, with notifications,
 * producer schedules and a pool-wide shutdown. `rota.pool.join(name, options)` returns the node's
 * {@link PoolNode} for that pool.
 */
import type { Cluster } from '../cluster/index.js';
import type { RotaContext } from '../core/context.js';
import { InvalidArgumentError } from '../errors.js';
import { checkName } from '../validate.js';
import './events.js';
import { PoolNode } from './node.js';
import { type PoolOptions, resolvePoolOptions } from './options.js';

export class Pools {
  readonly #nodes = new Map<string, PoolNode>();
  readonly #joining = new Set<string>();

  constructor(
    private readonly ctx: RotaContext,
    private readonly cluster: Cluster,
  ) {
    ctx.onClose(async () => {
      await Promise.all(
        [...this.#nodes.values()].map((node) =>
          node
            .close()
            .catch((err) => ctx.logger.warn(`pool ${node.name} did not close cleanly`, { error: err })),
        ),
      );
    });
  }

  /**
   * Join pool `name` as this node (one `PoolNode` per pool per Rota node; join again after
   * closing). Fails with `ROTA_POOL_SHUTTING_DOWN` while a shutdown of the pool is in progress.
   */
  async join(name: string, options: PoolOptions = {}): Promise<PoolNode> {
    checkName('name', name);
    const resolved = resolvePoolOptions(options);
    this.ctx.assertOpen();
    if (this.#nodes.has(name) || this.#joining.has(name)) {
      throw new InvalidArgumentError(`this node already joined pool ${name}; close it before joining again`, {
        detail: { field: 'name', pool: name },
      });
    }
    this.#joining.add(name);
    try {
      const node = await PoolNode.join(this.ctx, this.cluster, name, resolved, () => {
        if (this.#nodes.get(name) === node) this.#nodes.delete(name);
        this.#advertise();
      });
      this.#nodes.set(name, node);
      this.#advertise();
      return node;
    } finally {
      this.#joining.delete(name);
    }
  }

  /** The open pool nodes of this Rota node. */
  nodes(): PoolNode[] {
    return [...this.#nodes.values()];
  }

  /** Advertise the pools this node can run jobs of in its member record (`capabilities.pools`). */
  #advertise(): void {
    const names = [...this.#nodes.values()].filter((n) => !n.clientOnly && !n.isClosed).map((n) => n.name);
    if (this.ctx.closed) return;
    void this.cluster.session.setCapabilities('pools', names);
  }
}

export type { PoolEventMap } from './events.js';
export type { JobHandler, PoolJob, StopReason } from './handler.js';
export { hash64, score, toHex } from './hash.js';
export type { Payload } from './jobs.js';
export { type PoolJobInfo, PoolNode } from './node.js';
export {
  type DispatchOptions,
  type NotifyOptions,
  POOL_DEFAULTS,
  type PoolOptions,
  type StopJobOptions,
  type StopOptions,
  type WorkerOptions,
} from './options.js';
export { type PlacementFn, rank } from './placement.js';
export type { JobParam, JobPlan, JobProducer, PlanContext, PoolSchedule } from './schedule.js';
export type { PoolWorker, PoolWorkerInfo } from './worker.js';
