/**
 * The Lua scripts, one file per command in `./scripts/`. A script's first line names the
 * libraries it needs (`-- needs: common kv`); `lib-<name>.lua` files are prepended in that order.
 * Files are read relative to this module, so `npm run build` copies them next to the compiled
 * JavaScript (scripts/copy-assets.mjs). Scripts run by EVALSHA; a NOSCRIPT reply (a restarted or
 * flushed server) loads the script and runs it again, which is safe because it did not run.
 */
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import type { Redis } from 'ioredis';
import { isNoScript } from './errors.js';

export type ScriptName =
  | 'kv-get'
  | 'kv-range'
  | 'kv-put'
  | 'kv-delete'
  | 'kv-txn'
  | 'kv-status'
  | 'kv-compact'
  | 'lease-grant'
  | 'lease-keepalive'
  | 'lease-revoke'
  | 'lease-info'
  | 'q-enqueue'
  | 'q-claim'
  | 'q-renew'
  | 'q-settle'
  | 'q-sweep'
  | 'q-changes'
  | 'q-list'
  | 'q-count'
  | 'q-unpark';

export interface Script {
  readonly name: ScriptName;
  readonly body: string;
  readonly sha: string;
}

const DIR = new URL('./scripts/', import.meta.url);
let cache: Map<ScriptName, Script> | undefined;

/** Every script, read once per process. */
export function loadScripts(): Map<ScriptName, Script> {
  if (cache) return cache;
  const read = (file: string) => readFileSync(new URL(file, DIR), 'utf8');
  const scripts = new Map<ScriptName, Script>();
  for (const file of readdirSync(DIR).sort()) {
    if (!file.endsWith('.lua') || file.startsWith('lib-')) continue;
    const source = read(file);
    const needs = /^-- needs:(.*)$/m.exec(source.split('\n', 1)[0] ?? '');
    const libs = (needs?.[1] ?? '').trim().split(/\s+/).filter(Boolean);
    const body = [...libs.map((lib) => read(`lib-${lib}.lua`)), source].join('\n');
    const name = file.slice(0, -4) as ScriptName;
    scripts.set(name, { name, body, sha: createHash('sha1').update(body).digest('hex') });
  }
  cache = scripts;
  return scripts;
}

export type Arg = string | Buffer | number;

/** Runs scripts by EVALSHA with KEYS[1] = the hash-tagged prefix. */
export class ScriptRunner {
  readonly #scripts = loadScripts();
  readonly #base: string;

  constructor(base: string) {
    this.#base = base;
  }

  #get(name: ScriptName): Script {
    const script = this.#scripts.get(name);
    if (!script) throw new Error(`missing Lua script ${name}.lua`);
    return script;
  }

  /** Load every script into the server's cache (one pipeline). */
  async preload(redis: Redis): Promise<void> {
    const pipeline = redis.pipeline();
    for (const script of this.#scripts.values()) pipeline.call('SCRIPT', 'LOAD', script.body);
    const results = (await pipeline.exec()) ?? [];
    for (const [err] of results) if (err) throw err;
  }

  /** Run a script; replies keep bulk strings as strings. */
  async run(redis: Redis, name: ScriptName, args: Arg[]): Promise<unknown> {
    return this.#eval(redis, name, args, false);
  }

  /** Run a script; replies keep bulk strings as Buffers (binary KV values). */
  async runBuffer(redis: Redis, name: ScriptName, args: Arg[]): Promise<unknown> {
    return this.#eval(redis, name, args, true);
  }

  async #eval(redis: Redis, name: ScriptName, args: Arg[], buffers: boolean): Promise<unknown> {
    const script = this.#get(name);
    // The arguments go as one array, never spread into the call: a batch of 100 000 items is
    // millions of arguments, past what a JavaScript call can take ("Maximum call stack size
    // exceeded", thrown before anything is sent).
    const call = (sha: string) => {
      const argv = ([sha, 1, this.#base] as Arg[]).concat(args);
      return buffers ? redis.callBuffer('EVALSHA', argv) : redis.call('EVALSHA', argv);
    };
    try {
      return await call(script.sha);
    } catch (err) {
      if (!isNoScript(err)) throw err;
      await redis.call('SCRIPT', 'LOAD', script.body);
      return call(script.sha);
    }
  }
}
