/**
 * Helpers for multi-process tests: pick a store several processes can share, spawn children that
 * run TypeScript through tsx, and read their line-based reports.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { randomHex } from '../../src/core/ids.js';
import { storeSchemes } from '../../src/store/open.js';

/**
 * A store URL several processes can share, or null when this build has no multi-process backend
 * with a reachable server. Prefers an embedded SQLite file, then PostgreSQL, Redis, etcd.
 */
export function sharedStoreUrl(): string | null {
  const schemes = storeSchemes();
  if (schemes.includes('sqlite:'))
    return `sqlite:${join(mkdtempSync(join(tmpdir(), 'rota-mp-')), 'rota.db')}`;
  const candidates: [string, string | undefined][] = [
    ['postgres:', process.env.ROTA_TEST_POSTGRES_URL],
    ['redis:', process.env.ROTA_TEST_REDIS_URL],
    ['etcd:', process.env.ROTA_TEST_ETCD_URL],
  ];
  for (const [scheme, url] of candidates) if (url && schemes.includes(scheme)) return url;
  return null;
}

/** A unique namespace so parallel runs on one shared server never meet. */
export function uniqueNamespace(prefix: string): string {
  return `${prefix}-${randomHex(4)}`;
}

export interface Child {
  readonly process: ChildProcess;
  readonly name: string;
  /** Every stdout line so far. */
  readonly lines: string[];
  /** Resolve with the first line (from now on or already seen) matching `pattern`. */
  waitFor(pattern: RegExp, timeoutMs?: number): Promise<string>;
  kill(signal?: NodeJS.Signals): void;
  exited: Promise<number | null>;
}

/** Spawn `file` (TypeScript) in a child Node process with `env` added. */
export function spawnChild(name: string, file: string, env: Record<string, string>): Child {
  const child = spawn(process.execPath, ['--import', 'tsx', file], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const lines: string[] = [];
  const waiters: { pattern: RegExp; resolve: (line: string) => void }[] = [];
  createInterface({ input: child.stdout! }).on('line', (line) => {
    lines.push(line);
    for (const w of [...waiters]) {
      if (w.pattern.test(line)) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve(line);
      }
    }
  });
  let stderr = '';
  child.stderr!.on('data', (chunk) => {
    stderr += chunk;
  });
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return {
    process: child,
    name,
    lines,
    exited,
    kill: (signal = 'SIGKILL') => child.kill(signal),
    waitFor(pattern, timeoutMs = 30_000) {
      const seen = lines.find((l) => pattern.test(l));
      if (seen) return Promise.resolve(seen);
      return new Promise<string>((resolve, reject) => {
        const timer = setTimeout(() => {
          reject(
            new Error(
              `${name}: no line matching ${pattern} within ${timeoutMs} ms; stderr: ${stderr.slice(-2000)}`,
            ),
          );
        }, timeoutMs);
        waiters.push({
          pattern,
          resolve: (line) => {
            clearTimeout(timer);
            resolve(line);
          },
        });
      });
    },
  };
}
