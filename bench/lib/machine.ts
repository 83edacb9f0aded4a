/** What the benchmark ran on: the machine, the runtime, the servers and their durability settings. */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import os from 'node:os';
import { Redis } from 'ioredis';
import pg from 'pg';

export interface Machine {
  cpu: string;
  cores: number;
  memoryGb: number;
  os: string;
  node: string;
  loadAverageAtStart: number[];
  rotaCommit: string;
  packages: Record<string, string>;
  servers: {
    redis?: { version: string; persistence: string };
    postgres?: { version: string; durability: Record<string, string> };
    etcd?: { version: string; fsync: string };
  };
}

function pkgVersion(name: string): string {
  try {
    const file = new URL(`../../node_modules/${name}/package.json`, import.meta.url);
    return (JSON.parse(readFileSync(file, 'utf8')) as { version: string }).version;
  } catch {
    return 'unknown';
  }
}

export async function describeMachine(urls: {
  redis?: string;
  postgres?: string;
  etcd?: string;
}): Promise<Machine> {
  const cpus = os.cpus();
  let commit = 'unknown';
  try {
    commit = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { encoding: 'utf8' }).trim();
    const dirty = execFileSync('git', ['status', '--porcelain', '--', 'src'], { encoding: 'utf8' }).trim();
    if (dirty) commit += ' (src modified)';
  } catch {
    // not a git checkout
  }
  const machine: Machine = {
    cpu: cpus[0]?.model ?? 'unknown',
    cores: cpus.length,
    memoryGb: Math.round(os.totalmem() / 2 ** 30),
    os: `${os.type()} ${os.release()} ${os.arch()}`,
    node: process.version,
    loadAverageAtStart: os.loadavg().map((l) => Math.round(l * 100) / 100),
    rotaCommit: commit,
    packages: Object.fromEntries(
      ['bullmq', 'graphile-worker', 'pg-boss', 'ioredis', 'pg', 'better-sqlite3', 'etcd3'].map((p) => [
        p,
        pkgVersion(p),
      ]),
    ),
    servers: {},
  };
  if (urls.redis) {
    const redis = new Redis(urls.redis, { maxRetriesPerRequest: 1 });
    try {
      const info = await redis.info('server');
      const version = /redis_version:(\S+)/.exec(info)?.[1] ?? 'unknown';
      const aof = (await redis.config('GET', 'appendonly')) as string[];
      const save = (await redis.config('GET', 'save')) as string[];
      machine.servers.redis = {
        version,
        persistence: `appendonly=${aof[1]}, save="${save[1]}"`,
      };
    } finally {
      redis.disconnect();
    }
  }
  if (urls.postgres) {
    const client = new pg.Client({ connectionString: urls.postgres });
    await client.connect();
    try {
      const version = (await client.query('SHOW server_version')).rows[0].server_version as string;
      const res = await client.query(
        "SELECT name, setting FROM pg_settings WHERE name IN ('fsync', 'synchronous_commit', 'full_page_writes', 'wal_sync_method', 'shared_buffers', 'max_connections') ORDER BY name",
      );
      machine.servers.postgres = {
        version,
        durability: Object.fromEntries(res.rows.map((r) => [r.name as string, r.setting as string])),
      };
    } finally {
      await client.end();
    }
  }
  if (urls.etcd) {
    const res = await fetch(`${urls.etcd.replace(/^etcd:/, 'http:').replace(/\/+$/, '')}/version`);
    const body = (await res.json()) as { etcdserver?: string };
    machine.servers.etcd = {
      version: body.etcdserver ?? 'unknown',
      // As started by scripts/with-servers.mjs (ROTA_SERVERS_DURABLE=1 keeps fsync on).
      fsync: process.env.ROTA_SERVERS_DURABLE === '1' ? 'on (default)' : 'off (--unsafe-no-fsync) or unknown',
    };
  }
  return machine;
}
