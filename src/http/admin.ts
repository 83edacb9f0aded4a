/**
 * The operations behind the CLI, the HTTP API and the dashboard, over one `Rota` node. Each one
 * validates its input before it touches the store, goes through the modules' public API only, and
 * returns plain JSON-serialisable values, so the CLI prints them and the server sends them as is.
 */
import { createHash } from 'node:crypto';
import { Keyspace } from '../core/keys.js';
import {
  InvalidArgumentError,
  InvalidTransitionError,
  isRotaError,
  JobNotFoundError,
  TaskNotFoundError,
  TimeoutError,
} from '../errors.js';
import type { PoolJobInfo, PoolNode } from '../pool/index.js';
import type { Rota } from '../rota.js';
import type { RunInfo, ScheduleInfo } from '../schedules/index.js';
import type { EnqueueItem, EnqueueOptions, Task, TaskPage, TaskRef } from '../tasks/index.js';
import { checkInt, checkName, invalid } from '../validate.js';

/** Task states, in lifecycle order. */
export const TASK_STATES = ['pending', 'claimed', 'running', 'completed', 'resolving'] as const;
export type TaskStateName = (typeof TASK_STATES)[number];

/** Enqueue options accepted from people and other languages (no functions, durations in ms). */
export const ENQUEUE_OPTION_KEYS = [
  'id',
  'priority',
  'delay',
  'runAt',
  'maxAttempts',
  'timeout',
  'claimTimeout',
  'deadLetter',
  'tags',
  'annotation',
  'dedupKey',
] as const;

/** One task to add: its payload plus the options above. */
export interface AddTaskInput {
  payload?: unknown;
  id?: string;
  priority?: number;
  delay?: number;
  runAt?: number;
  maxAttempts?: number;
  timeout?: number | null;
  claimTimeout?: number | null;
  deadLetter?: string | null;
  tags?: string[];
  annotation?: string;
  /** Shorthand for `dedup: { key }`. */
  dedupKey?: string;
}

export interface MemberView {
  nodeId: string;
  hostname: string;
  pid: number;
  labels: Record<string, string>;
  version: string;
  startedAt: number;
  capabilities: { schedules: string[]; queues: string[]; pools: string[]; hosts: string[] };
}

export interface StatusView {
  node: string;
  namespace: string;
  now: number;
  members: MemberView[];
  leaders: { name: string; nodeId: string; token: number; since: number; candidates: number }[];
  hosts: { namespace: string; hosts: string[]; leader: string | null; decidedAt: number | null }[];
}

export interface WorkerView {
  id: string;
  nodeId: string;
  createdAt: number;
  state: 'active' | 'draining';
  jobs: string[];
}

const MAX_RETRY_COPIES = 1000;

function retryId(id: string, n: number): string {
  const plain = `rt-${id}-${n}`;
  if (plain.length <= 128) return plain;
  return `rt-${createHash('sha256').update(id).digest('hex').slice(0, 40)}-${n}`;
}

function toEnqueueOptions(input: AddTaskInput): EnqueueOptions {
  const { payload: _payload, dedupKey, ...rest } = input;
  const out: EnqueueOptions = { ...rest } as EnqueueOptions;
  if (dedupKey !== undefined) out.dedup = { key: dedupKey };
  return out;
}

export class Admin {
  readonly #rota: Rota;
  /** Client-only pool nodes this admin joined (pools the node did not join itself). */
  readonly #pools = new Map<string, Promise<PoolNode>>();
  #closed = false;

  constructor(rota: Rota) {
    this.#rota = rota;
  }

  get rota(): Rota {
    return this.#rota;
  }

  // ----------------------------------------------------------------------------------------------
  // Cluster

  async members(): Promise<MemberView[]> {
    const members = await this.#rota.cluster.members({ fresh: true });
    return members
      .map((m) => ({
        nodeId: m.nodeId,
        hostname: m.hostname,
        pid: m.pid,
        labels: m.labels,
        version: m.version,
        startedAt: m.startedAt,
        capabilities: m.capabilities,
      }))
      .sort((a, b) => (a.nodeId < b.nodeId ? -1 : a.nodeId > b.nodeId ? 1 : 0));
  }

  /** Members, election leaders and host decisions (every namespace some member offers a host for). */
  async status(): Promise<StatusView> {
    const [members, leaders, now] = await Promise.all([
      this.members(),
      this.#rota.cluster.leaders(),
      this.#rota.store.now(),
    ]);
    const namespaces = await this.hostNamespaces();
    const hosts = await Promise.all(
      namespaces.map(async (ns) => {
        const d = await this.#rota.hosts.get(ns);
        return { namespace: ns, hosts: d.hosts, leader: d.leader, decidedAt: d.decidedAt };
      }),
    );
    return {
      node: this.#rota.nodeId,
      namespace: this.#rota.namespace,
      now,
      members,
      leaders: leaders.map((l) => ({
        name: l.name,
        nodeId: l.nodeId,
        token: l.token,
        since: l.since,
        candidates: l.candidates,
      })),
      hosts,
    };
  }

  /** Host namespaces that have candidates or a decision (read from the keys under `hosts/`). */
  async hostNamespaces(): Promise<string[]> {
    const keys = new Keyspace(this.#rota.namespace);
    const names = new Set<string>();
    for (const kind of ['candidates', 'decisions']) {
      const prefix = keys.prefix('hosts', kind);
      const { kvs } = await this.#rota.store.range(prefix);
      for (const kv of kvs) {
        const [ns] = keys.rest(prefix, kv.key);
        if (ns !== undefined) names.add(ns);
      }
    }
    return [...names].sort();
  }

  locks(): Promise<{ name: string; nodeId: string; token: number; value: unknown; waiting: number }[]> {
    return this.#rota.cluster.locks();
  }

  // ----------------------------------------------------------------------------------------------
  // Tasks

  addTask(queue: string, input: AddTaskInput): Promise<TaskRef> {
    return this.#rota.tasks.enqueue(queue, input.payload ?? null, toEnqueueOptions(input));
  }

  /** All or nothing: one bad item stores none. */
  addTasks(queue: string, items: AddTaskInput[]): Promise<TaskRef[]> {
    const mapped: EnqueueItem[] = items.map((it) => ({
      ...toEnqueueOptions(it),
      payload: it.payload ?? null,
    }));
    return this.#rota.tasks.enqueueMany(queue, mapped);
  }

  listTasks(query: {
    queue?: string;
    state?: TaskStateName;
    limit?: number;
    cursor?: number;
  }): Promise<TaskPage> {
    const q: Parameters<Rota['tasks']['listPage']>[0] = {};
    if (query.queue !== undefined) q.queue = query.queue;
    if (query.state !== undefined) q.state = query.state;
    if (query.limit !== undefined) q.limit = query.limit;
    if (query.cursor !== undefined) q.cursor = query.cursor;
    return this.#rota.tasks.listPage(q);
  }

  async getTask(id: string): Promise<Task> {
    const task = await this.#rota.tasks.get(id);
    if (!task) throw new TaskNotFoundError(`no task has id ${id}`, { detail: { id } });
    return task;
  }

  /** Cancel a pending, claimed or running task; resolves with the task after the change. */
  async cancelTask(id: string, reason?: string): Promise<Task> {
    await this.#rota.tasks.cancel(id, reason === undefined ? {} : { reason });
    return this.getTask(id);
  }

  /**
   * Run a failed or cancelled task again: a new task `rt-<id>-<n>` in the same queue with the same
   * payload, priority, attempts, timeout and tags (the original stays as it was, for the record).
   * Anything else fails with `ROTA_INVALID_TRANSITION`.
   */
  async retryTask(id: string): Promise<TaskRef> {
    const task = await this.getTask(id);
    if (task.state !== 'completed' || task.outcome === 'succeeded') {
      throw new InvalidTransitionError(
        `task ${id} is ${task.state}${task.outcome ? ` (${task.outcome})` : ''}; only failed or cancelled tasks can be retried`,
        { detail: { id, from: task.state, to: 'pending', outcome: task.outcome } },
      );
    }
    for (let n = 1; n <= MAX_RETRY_COPIES; n++) {
      try {
        return await this.#rota.tasks.enqueue(task.queue, task.payload, {
          id: retryId(id, n),
          priority: task.priority,
          maxAttempts: task.maxAttempts,
          timeout: task.timeout,
          tags: [...task.tags],
          annotation: `retry of ${id}`,
          ...(task.deadLetter ? { deadLetter: task.deadLetter } : {}),
        });
      } catch (err) {
        if (!isRotaError(err, 'ROTA_TASK_EXISTS')) throw err;
      }
    }
    throw new InvalidArgumentError(`task ${id} was retried ${MAX_RETRY_COPIES} times already`, {
      detail: { field: 'id', id },
    });
  }

  async redrive(dlq: string, limit?: number): Promise<{ redriven: number }> {
    const redriven = await this.#rota.tasks.redrive(dlq, limit === undefined ? {} : { limit });
    return { redriven };
  }

  counts(queue?: string): Promise<Record<string, Record<TaskStateName, number>>> {
    return this.#rota.tasks.counts(queue);
  }

  /** Resolve once `queue` has no pending, claimed or running task; `onProgress(left)` on each poll. */
  async drain(
    queue: string,
    options: {
      timeout: number;
      interval?: number;
      onProgress?: (left: number) => void;
      signal?: AbortSignal;
    },
  ): Promise<void> {
    checkName('queue', queue);
    const deadline = Date.now() + options.timeout;
    for (;;) {
      const c = (await this.counts(queue))[queue];
      const left = c ? c.pending + c.claimed + c.running : 0;
      options.onProgress?.(left);
      if (left === 0) return;
      if (Date.now() >= deadline || options.signal?.aborted) {
        throw new TimeoutError(`queue ${queue} still has ${left} tasks`, {
          detail: { queue, left },
        });
      }
      await new Promise((r) => setTimeout(r, options.interval ?? 250));
    }
  }

  // ----------------------------------------------------------------------------------------------
  // Schedules

  listSchedules(): Promise<ScheduleInfo[]> {
    return this.#rota.schedules.list();
  }

  getSchedule(name: string): Promise<ScheduleInfo> {
    return this.#rota.schedules.get(name);
  }

  /** gocron's RunNow: one manual run, taken by a node that has the handler. */
  runNow(name: string): Promise<RunInfo> {
    return this.#rota.schedules.trigger(name);
  }

  pause(name: string): Promise<ScheduleInfo> {
    return this.#rota.schedules.pause(name);
  }

  resume(name: string): Promise<ScheduleInfo> {
    return this.#rota.schedules.resume(name);
  }

  history(name: string, limit?: number): Promise<RunInfo[]> {
    return this.#rota.schedules.runs(name, limit === undefined ? {} : { limit });
  }

  // ----------------------------------------------------------------------------------------------
  // Pools

  /** Pools some live member runs jobs of, plus the ones this node joined. */
  async pools(): Promise<string[]> {
    const members = await this.#rota.cluster.members();
    const names = new Set(members.flatMap((m) => m.capabilities.pools));
    for (const n of this.#rota.pool.nodes()) names.add(n.name);
    for (const n of this.#pools.keys()) names.add(n);
    return [...names].sort();
  }

  /** This node's open node of `pool`, or a client-only node joined on first use. */
  async #pool(name: string): Promise<PoolNode> {
    checkName('pool', name);
    if (this.#closed) throw new InvalidArgumentError('the admin is closed', { detail: { field: 'pool' } });
    const own = this.#rota.pool.nodes().find((n) => n.name === name && !n.isClosed);
    if (own) return own;
    let node = this.#pools.get(name);
    if (node) {
      const ready = await node;
      if (!ready.isClosed) return ready;
    }
    node = this.#rota.pool.join(name, { clientOnly: true });
    this.#pools.set(name, node);
    node.catch(() => this.#pools.delete(name));
    return node;
  }

  async poolJobs(pool: string): Promise<PoolJobInfo[]> {
    return (await this.#pool(pool)).jobs();
  }

  /** Every worker of the pool with the keys it owns now. */
  async poolWorkers(pool: string): Promise<WorkerView[]> {
    const node = await this.#pool(pool);
    const jobs = node.jobs();
    return node.poolWorkers().map((w) => ({
      ...w,
      jobs: jobs.filter((j) => j.workerId === w.id).map((j) => j.key),
    }));
  }

  /**
   * Dispatch a job. With `wait` (default false here: people and scripts want the admission, not the
   * start) it resolves once a worker started it, or fails after `timeout` ms.
   */
  async dispatch(
    pool: string,
    key: string,
    payload: string | null,
    options: { wait?: boolean; timeout?: number } = {},
  ): Promise<PoolJobInfo> {
    checkName('key', key);
    if (options.timeout !== undefined) checkInt('timeout', options.timeout, 1);
    const node = await this.#pool(pool);
    await node.dispatch(key, payload, {
      wait: options.wait ?? false,
      ...(options.timeout !== undefined ? { timeout: options.timeout } : {}),
    });
    const info = (await this.#fresh(node)).find((j) => j.key === key);
    if (!info)
      throw new JobNotFoundError(`job ${key} of pool ${pool} is gone already`, { detail: { pool, key } });
    return info;
  }

  /** Stop a job; `ROTA_JOB_NOT_FOUND` when there is no such job. Waits until it stopped unless `wait: false`. */
  async stopJob(pool: string, key: string, options: { wait?: boolean } = {}): Promise<{ stopped: true }> {
    checkName('key', key);
    const node = await this.#pool(pool);
    const existed = await node.stopJob(key, { wait: options.wait ?? true });
    if (!existed) throw new JobNotFoundError(`pool ${pool} has no job ${key}`, { detail: { pool, key } });
    return { stopped: true };
  }

  /** The cache of a freshly joined client node may lag the write it just made: wait for the key. */
  async #fresh(node: PoolNode): Promise<PoolJobInfo[]> {
    const fresh = new Set(await node.jobKeys({ fresh: true }));
    for (let i = 0; i < 40; i++) {
      const jobs = node.jobs();
      if ([...fresh].every((k) => jobs.some((j) => j.key === k))) return jobs;
      await new Promise((r) => setTimeout(r, 25));
    }
    return node.jobs();
  }

  /** Close the client-only pool nodes this admin joined (the Rota node stays open). */
  async close(): Promise<void> {
    this.#closed = true;
    const nodes = await Promise.allSettled([...this.#pools.values()]);
    this.#pools.clear();
    await Promise.all(
      nodes.map((n) => (n.status === 'fulfilled' ? n.value.close().catch(() => undefined) : undefined)),
    );
  }
}

/** Parse a task state name (`ROTA_INVALID_ARGUMENT` otherwise). */
export function checkTaskState(field: string, value: string): TaskStateName {
  if (!(TASK_STATES as readonly string[]).includes(value))
    invalid(field, `must be one of ${TASK_STATES.join(', ')}`);
  return value as TaskStateName;
}
