/**
 * The Lua scripts, one file per command in `./scripts/`. A script's first line names the
 * libraries it needs (`-- needs: common kv`): `lib-<name>.lua` files come first, in that order,
 * then the script's body as a function of (KEYS, ARGV) that starts by setting the call's prefix
 * and starting the libraries (`Q.begin()`, `KV.start(ARGV)`). Files are read relative to this
 * module, so `npm run build` copies them next to the compiled JavaScript (scripts/copy-assets.mjs).
 *
 * The same code runs two ways:
 * - **Redis Functions** (Redis 7 and newer; the default when the server accepts `FUNCTION LOAD`):
 *   one library per set of libraries (`rota_queue_<hash>`, `rota_kv_<hash>`), loaded once and
 *   called by `FCALL`. The libraries' functions are then defined once per server instead of once
 *   per call, which was about half the server time of a small call.
 * - **EVALSHA** (Redis 6.2, a server that refuses `FUNCTION LOAD`, or `scripts: 'eval'`): one
 *   script per command, its libraries included.
 * A `NOSCRIPT` or "Function not found" reply (a restarted or flushed server) loads the code and
 * runs the call again, which is safe because nothing ran. The hash in every name changes with
 * the code, so different Rota versions can share a server.
 */
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import type { Redis } from 'ioredis';
import { isFunctionMissing, isNoScript } from './errors.js';

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

/** How scripts run: Redis Functions, EVALSHA, or the first the server accepts (`auto`). */
export type ScriptMode = 'functions' | 'eval';

export interface Script {
  readonly name: ScriptName;
  /** The EVAL form: libraries, then the body. */
  readonly body: string;
  readonly sha: string;
  /** The Redis Functions form: the function's name. */
  readonly fn: string;
}

/** A Redis Functions library: every script that needs the same libraries. */
interface FunctionLibrary {
  readonly name: string;
  /** `FUNCTION LOAD` text (with its `#!lua name=` line). */
  readonly code: string;
}

const DIR = new URL('./scripts/', import.meta.url);

/** What each library runs at the start of a call, after `P = KEYS[1]`. */
const START: Record<string, string> = { common: '', queue: 'Q.begin()', kv: 'KV.start(ARGV)' };

interface Loaded {
  scripts: Map<ScriptName, Script>;
  libraries: Map<string, FunctionLibrary>;
}
let cache: Loaded | undefined;

const sha1 = (text: string) => createHash('sha1').update(text).digest('hex');

function load(): Loaded {
  if (cache) return cache;
  const read = (file: string) => readFileSync(new URL(file, DIR), 'utf8');
  // Script sources grouped by the libraries they need.
  const groups = new Map<string, { libs: string[]; sources: [ScriptName, string][] }>();
  for (const file of readdirSync(DIR).sort()) {
    if (!file.endsWith('.lua') || file.startsWith('lib-')) continue;
    const source = read(file);
    const needs = /^-- needs:(.*)$/m.exec(source.split('\n', 1)[0] ?? '');
    const libs = (needs?.[1] ?? '').trim().split(/\s+/).filter(Boolean);
    const key = libs.join(' ');
    const group = groups.get(key) ?? { libs, sources: [] };
    group.sources.push([file.slice(0, -4) as ScriptName, source]);
    groups.set(key, group);
  }
  const scripts = new Map<ScriptName, Script>();
  const libraries = new Map<string, FunctionLibrary>();
  for (const { libs, sources } of groups.values()) {
    const prelude = libs.map((lib) => read(`lib-${lib}.lua`)).join('\n');
    const start = ['P = KEYS[1]', ...libs.map((lib) => START[lib] ?? '')].filter(Boolean).join('\n');
    const main = (source: string) => `function(KEYS, ARGV)\n${start}\n${source}\nend`;
    const registrations = sources.map(([name, source]) => [name, main(source)] as const);
    const hash = sha1([prelude, ...registrations.map(([n, m]) => `${n}\n${m}`)].join('\n')).slice(0, 12);
    const library = `rota_${libs.filter((lib) => lib !== 'common').join('_') || 'common'}_${hash}`;
    const fnName = (name: ScriptName) => `rota_${hash}_${name.replace(/-/g, '_')}`;
    const code = [
      `#!lua name=${library}`,
      prelude,
      ...registrations.map(([name, m]) => `redis.register_function('${fnName(name)}', ${m})`),
    ].join('\n');
    libraries.set(library, { name: library, code });
    for (const [name, m] of registrations) {
      const body = `${prelude}\nlocal main = ${m}\nreturn main(KEYS, ARGV)`;
      scripts.set(name, { name, body, sha: sha1(body), fn: fnName(name) });
    }
  }
  cache = { scripts, libraries };
  return cache;
}

/** Every script, read once per process. */
export function loadScripts(): Map<ScriptName, Script> {
  return load().scripts;
}

export type Arg = string | Buffer | number;

const isReplyError = (err: unknown) => err instanceof Error && err.name === 'ReplyError';

/** Runs scripts by FCALL or EVALSHA with KEYS[1] = the hash-tagged prefix. */
export class ScriptRunner {
  readonly #scripts = loadScripts();
  readonly #libraries = load().libraries;
  readonly #base: string;
  readonly #want: ScriptMode | 'auto';
  #mode: ScriptMode;

  constructor(base: string, mode: ScriptMode | 'auto' = 'auto') {
    this.#base = base;
    this.#want = mode;
    this.#mode = mode === 'eval' ? 'eval' : 'functions';
  }

  #get(name: ScriptName): Script {
    const script = this.#scripts.get(name);
    if (!script) throw new Error(`missing Lua script ${name}.lua`);
    return script;
  }

  /**
   * Load the code into the server: the function libraries, or (`eval`, or `auto` on a server
   * that refuses them, e.g. Redis 6.2 or an ACL without FUNCTION) every script into the script
   * cache.
   */
  async preload(redis: Redis): Promise<void> {
    if (this.#want !== 'eval') {
      try {
        await this.#loadFunctions(redis);
        this.#mode = 'functions';
        return;
      } catch (err) {
        if (this.#want === 'functions' || !isReplyError(err)) throw err;
      }
    }
    this.#mode = 'eval';
    const pipeline = redis.pipeline();
    for (const script of this.#scripts.values()) pipeline.call('SCRIPT', 'LOAD', script.body);
    const results = (await pipeline.exec()) ?? [];
    for (const [err] of results) if (err) throw err;
  }

  /** FUNCTION LOAD each library unless the server has it (a library name is its code's hash). */
  async #loadFunctions(redis: Redis): Promise<void> {
    const pipeline = redis.pipeline();
    for (const library of this.#libraries.values()) pipeline.call('FUNCTION', 'LOAD', library.code);
    const results = (await pipeline.exec()) ?? [];
    for (const [err] of results)
      if (err && !(isReplyError(err) && /Library '.*' already exists/.test(err.message))) throw err;
  }

  /** Run a script; replies keep bulk strings as strings. */
  async run(redis: Redis, name: ScriptName, args: Arg[]): Promise<unknown> {
    return this.#call(redis, name, args, false);
  }

  /** Run a script; replies keep bulk strings as Buffers (binary KV values). */
  async runBuffer(redis: Redis, name: ScriptName, args: Arg[]): Promise<unknown> {
    return this.#call(redis, name, args, true);
  }

  async #call(redis: Redis, name: ScriptName, args: Arg[], buffers: boolean): Promise<unknown> {
    const script = this.#get(name);
    const functions = this.#mode === 'functions';
    // The arguments go as one array, never spread into the call: a batch of 100 000 items is
    // millions of arguments, past what a JavaScript call can take ("Maximum call stack size
    // exceeded", thrown before anything is sent).
    const argv = ([functions ? script.fn : script.sha, 1, this.#base] as Arg[]).concat(args);
    const command = functions ? 'FCALL' : 'EVALSHA';
    const call = () => (buffers ? redis.callBuffer(command, argv) : redis.call(command, argv));
    try {
      return await call();
    } catch (err) {
      if (functions ? !isFunctionMissing(err) : !isNoScript(err)) throw err;
      if (functions) await this.#loadFunctions(redis);
      else await redis.call('SCRIPT', 'LOAD', script.body);
      return call();
    }
  }
}
