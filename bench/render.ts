/**
 * Re-render docs/benchmarks.md from a results file without running anything (after editing
 * bench/results/notes.md, for instance).
 *
 *   npx tsx bench/render.ts [bench/results/latest.json]
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { type BenchResults, renderMarkdown } from './lib/report.js';

const file = process.argv[2] ? resolve(process.argv[2]) : new URL('./results/latest.json', import.meta.url);
const results = JSON.parse(readFileSync(file, 'utf8')) as BenchResults;
writeFileSync(new URL('../docs/benchmarks.md', import.meta.url), renderMarkdown(results).document);
console.log('wrote docs/benchmarks.md');
