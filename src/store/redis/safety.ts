/**
 * Checks of the Redis server at startup: a version with the commands the scripts use, and a
 * `maxmemory-policy` that cannot evict Rota's keys. Rota sets no TTL on any key, so `noeviction`
 * and the `volatile-*` policies (which only evict keys that have a TTL) are safe; `allkeys-*`
 * could silently drop a lease, an item or the revision counter, so the store refuses to start.
 */
import type { Redis } from 'ioredis';
import { StoreError, UnsafeStoreConfigError } from '../../errors.js';
import type { RedisConfig } from './options.js';

/** `field:value` lines of an INFO section. */
function infoField(info: string, field: string): string | undefined {
  const m = new RegExp(`^${field}:(.*)$`, 'm').exec(info);
  return m?.[1]?.trim();
}

/** The policies under which Redis never evicts a key without a TTL. */
export function evictionSafe(policy: string): boolean {
  return policy === 'noeviction' || policy.startsWith('volatile-');
}

export interface ServerFacts {
  version: string;
  /** AOF or RDB snapshots are on (or the configuration cannot be read). */
  persistent: boolean;
}

export async function checkServer(redis: Redis, config: RedisConfig): Promise<ServerFacts> {
  const server = String(await redis.call('INFO', 'server'));
  const version = infoField(server, 'redis_version') ?? '0';
  const [major = 0, minor = 0] = version.split('.').map(Number);
  if (major < 6 || (major === 6 && minor < 2)) {
    throw new StoreError(`Rota needs Redis 6.2 or newer; the server runs ${version}`, {
      detail: { version },
    });
  }
  const memory = String(await redis.call('INFO', 'memory'));
  const policy = infoField(memory, 'maxmemory_policy');
  if (config.checkEviction) {
    if (policy === undefined) {
      throw new UnsafeStoreConfigError(
        'cannot read maxmemory-policy from INFO memory; if the server never evicts keys, open the store with checkEviction=false',
        { detail: { setting: 'maxmemory-policy' } },
      );
    }
    if (!evictionSafe(policy)) {
      throw new UnsafeStoreConfigError(
        `Redis maxmemory-policy is ${policy}, which can evict Rota's keys and lose leases, tasks and history; ` +
          'set it to noeviction (or a volatile-* policy)',
        { detail: { setting: 'maxmemory-policy', value: policy } },
      );
    }
  }
  const persistence = String(await redis.call('INFO', 'persistence'));
  let persistent = infoField(persistence, 'aof_enabled') === '1';
  if (!persistent) {
    try {
      const save = (await redis.call('CONFIG', 'GET', 'save')) as string[];
      persistent = (save[1] ?? '').trim() !== '';
    } catch {
      // CONFIG is often disabled on managed servers, which do persist.
      persistent = true;
    }
  }
  return { version, persistent };
}
