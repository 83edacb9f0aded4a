/**
 * Rota as the benchmark runs it: the compiled build in dist/ (plain JavaScript, as users run it and
 * as the peers run from node_modules), unless it is missing or older than src/ (then the
 * TypeScript sources through tsx, with a warning) or ROTA_BENCH_SOURCE=src asks for the sources.
 * `npm run bench` builds dist/ first.
 */
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type * as RotaModule from '../../src/index.js';

const root = fileURLToPath(new URL('../../', import.meta.url));
const distEntry = join(root, 'dist', 'index.js');

function newest(dir: string): number {
  let latest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    latest = Math.max(latest, entry.isDirectory() ? newest(path) : statSync(path).mtimeMs);
  }
  return latest;
}

function pick(): { source: 'dist' | 'src'; why: string } {
  if (process.env.ROTA_BENCH_SOURCE === 'src') return { source: 'src', why: 'ROTA_BENCH_SOURCE=src' };
  if (!existsSync(distEntry)) return { source: 'src', why: 'no dist/ build (npm run build)' };
  if (newest(join(root, 'src')) > statSync(distEntry).mtimeMs)
    return { source: 'src', why: 'dist/ is older than src/ (npm run build)' };
  return { source: 'dist', why: 'compiled build' };
}

export const rotaSource = pick();
// A computed specifier, so the type checker does not need dist/ to exist.
const specifier = rotaSource.source === 'dist' ? '../../dist/index.js' : '../../src/index.js';
const mod = (await import(specifier)) as typeof RotaModule;

export const Rota = mod.Rota;
export type Rota = RotaModule.Rota;
