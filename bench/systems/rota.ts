/**
 * Rota's tasks module on one store, driven like the peers: one node in this process is both the
 * producer (`enqueueMany` in the chunk size the workload gives, `enqueue` one by one) and the
 * worker (`rota.tasks.work` at `concurrency`, every other option at its default).
 *
 * Each system gets its own isolated corner of the store (a Redis key prefix, a PostgreSQL schema,
 * an etcd key prefix, a fresh SQLite file, a private memory engine), deleted by `teardown()`.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import pg from 'pg';
import { Rota } from '../lib/rota.js';
import type { BenchJob, QueueSystem } from './types.js';

export type RotaEngine = 'memory' | 'sqlite' | 'postgres' | 'redis' | 'etcd';

/** Where one Rota system lives, and how to delete it afterwards. */
export interface RotaPlace {
  url: string;
  drop(): Promise<void>;
}

/** Delete every key of a Redis store prefix (`{prefix}:*`), in batches. */
export async function dropRedisPrefix(url: string, prefix: string): Promise<void> {
  const admin = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 1 });
  try {
    await admin.connect();
    let cursor = '0';
    do {
      const [next, keys] = await admin.scan(cursor, 'MATCH', `{${prefix}}:*`, 'COUNT', 5000);
      cursor = next;
      if (keys.length > 0) await admin.unlink(...keys);
    } while (cursor !== '0');
  } finally {
    admin.disconnect();
  }
}

/** A fresh, isolated place for a Rota store on `engine`; `serverUrl` is the server's URL. */
export function rotaPlace(engine: RotaEngine, serverUrl?: string): RotaPlace {
  const tag = randomBytes(4).toString('hex');
  switch (engine) {
    case 'memory':
      // A named engine, so the same process could open it twice; `memory:` alone would be private.
      return { url: `memory:bench-${tag}`, drop: async () => undefined };
    case 'sqlite': {
      const dir = mkdtempSync(join(tmpdir(), 'rota-bench-'));
      return {
        url: `sqlite:${join(dir, 'rota.db')}`,
        drop: async () => rmSync(dir, { recursive: true, force: true }),
      };
    }
    case 'redis': {
      const prefix = `bench-${tag}`;
      const url = new URL(serverUrl as string);
      url.searchParams.set('prefix', prefix);
      return { url: url.toString(), drop: () => dropRedisPrefix(serverUrl as string, prefix) };
    }
    case 'postgres': {
      const schema = `bench_${tag}`;
      const url = new URL(serverUrl as string);
      url.searchParams.set('schema', schema);
      return {
        url: url.toString(),
        drop: async () => {
          const client = new pg.Client({ connectionString: serverUrl });
          client.on('error', () => undefined);
          await client.connect();
          try {
            await client.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
          } finally {
            await client.end();
          }
        },
      };
    }
    case 'etcd': {
      const prefix = `bench-${tag}/`;
      const base = (serverUrl as string).replace(/\/+$/, '');
      const url = `${base}/?prefix=${encodeURIComponent(prefix)}`;
      return {
        url,
        drop: async () => {
          const { dropEtcdPrefix } = await import('../../src/store/etcd/index.js');
          await dropEtcdPrefix(base, prefix);
        },
      };
    }
  }
}

export class RotaSystem implements QueueSystem {
  readonly name: string;
  #rota: Rota | null = null;
  #place: RotaPlace | null = null;
  #queue = '';
  #runs = 0;

  constructor(
    readonly engine: RotaEngine,
    private readonly serverUrl?: string,
  ) {
    this.name = `rota/${engine}`;
  }

  /** The node (after the first `setup()`). */
  get rota(): Rota {
    if (!this.#rota) throw new Error(`${this.name}: setup() first`);
    return this.#rota;
  }

  get queue(): string {
    return this.#queue;
  }

  async setup(): Promise<void> {
    if (!this.#rota) {
      this.#place = rotaPlace(this.engine, this.serverUrl);
      this.#rota = await Rota.connect({ store: this.#place.url, nodeId: `bench-${process.pid}` });
    }
    this.#queue = `bench-${++this.#runs}`;
  }

  async enqueueBulk(jobs: BenchJob[]): Promise<void> {
    await this.rota.tasks.enqueueMany(
      this.#queue,
      jobs.map((payload) => ({ payload })),
    );
  }

  async enqueue(job: BenchJob): Promise<void> {
    await this.rota.tasks.enqueue(this.#queue, job);
  }

  async work(concurrency: number, onJob: (job: BenchJob) => void): Promise<() => Promise<void>> {
    const worker = this.rota.tasks.work<BenchJob>(
      this.#queue,
      (task) => {
        onJob(task.payload);
      },
      { concurrency },
    );
    return () => worker.close();
  }

  async teardown(): Promise<void> {
    const rota = this.#rota;
    const place = this.#place;
    this.#rota = null;
    this.#place = null;
    if (rota) await rota.close();
    if (place) await place.drop();
  }
}
