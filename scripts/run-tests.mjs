#!/usr/bin/env node
// Runs node:test over the test files under the given folders (default: test/), with tsx.
// Node 20 does not expand globs for --test, so the files are listed here.
import { spawn } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';

const roots = process.argv.slice(2).filter((a) => !a.startsWith('--'));
const extra = process.argv.slice(2).filter((a) => a.startsWith('--'));
const files = [];
const walk = (dir) => {
  for (const name of readdirSync(dir).sort()) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) walk(path);
    else if (/\.test\.ts$/.test(name)) files.push(path);
  }
};
for (const root of roots.length ? roots : ['test']) {
  if (statSync(root).isFile()) files.push(root);
  else walk(root);
}
if (files.length === 0) {
  console.error('run-tests: no test files found');
  process.exit(1);
}
// Tests mostly wait on timers and servers, so run as many files at once as there are cores (2 here),
// but not so many that CPU contention stalls event loops past the 500 ms lease safety margin.
const concurrency = process.env.ROTA_TEST_CONCURRENCY ?? '2';
const args = ['--import', 'tsx', '--test', `--test-concurrency=${concurrency}`, ...extra, ...files];
const child = spawn(process.execPath, args, { stdio: 'inherit' });
child.on('exit', (code, signal) => process.exit(code ?? (signal ? 1 : 0)));
