#!/usr/bin/env node
/**
 * The `rota` binary. From source: `npx tsx src/cli/main.ts <command>`; built: `rota <command>`
 * (package.json `bin`, pointing at dist/cli/main.js). See docs/cli.md.
 */
import { runCli } from './program.js';

const code = await runCli(process.argv.slice(2), {
  stdout: process.stdout,
  stderr: process.stderr,
  env: process.env,
});
process.exitCode = code;
// A finished command must not hang on a stray handle (a driver socket closing slowly, say).
setTimeout(() => process.exit(code), 3000).unref();
