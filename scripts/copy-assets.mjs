#!/usr/bin/env node
// Copies non-TypeScript files the compiled code reads at run time into dist/ (run by `npm run build`
// after tsc): the Redis store's Lua scripts, which src/store/redis/scripts.ts loads relative to
// its own module, so dist/store/redis/scripts.js finds them in dist/store/redis/scripts/.
import { cpSync, mkdirSync, readdirSync } from 'node:fs';
import { join } from 'node:path';

const assets = [['src/store/redis/scripts', 'dist/store/redis/scripts', '.lua']];
for (const [from, to, ext] of assets) {
  mkdirSync(to, { recursive: true });
  const files = readdirSync(from).filter((f) => f.endsWith(ext));
  for (const f of files) cpSync(join(from, f), join(to, f));
  console.log(`copy-assets: ${files.length} ${ext} files -> ${to}`);
}
