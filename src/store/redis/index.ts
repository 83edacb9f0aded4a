/**
 * The Redis store (`redis://…`, `rediss://…`). See docs/stores.md, section "Redis".
 */
import { RotaError } from '../../errors.js';
import type { Store } from '../port.js';
import { Connection } from './connection.js';
import { toRotaError } from './errors.js';
import { parseRedisConfig } from './options.js';
import { checkServer } from './safety.js';
import { ScriptRunner } from './scripts.js';
import { RedisStore } from './store.js';

export { parseRedisConfig, REDIS_DEFAULTS, type RedisConfig, type RedisStoreOptions } from './options.js';
export { evictionSafe } from './safety.js';
export { RedisStore } from './store.js';

/**
 * Open a Redis store (not yet wrapped in `withValidation`; `openStore` does that). Connects,
 * checks the server (version, eviction policy) and loads the scripts before returning.
 */
export async function openRedisStore(url: URL, options: Record<string, unknown> = {}): Promise<Store> {
  const config = parseRedisConfig(url, options);
  const main = new Connection(config, 'main');
  try {
    await main.ready();
    const facts = await checkServer(main.redis, config);
    const scripts = new ScriptRunner(config.base, config.scripts);
    await scripts.preload(main.redis);
    return new RedisStore(config, main, facts, scripts);
  } catch (err) {
    await main.close(false);
    throw err instanceof RotaError ? err : toRotaError(err, false);
  }
}
