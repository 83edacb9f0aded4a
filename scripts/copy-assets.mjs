#!/usr/bin/env node
// Copies non-TypeScript files the compiled code reads at run time into dist/ (run by `npm run build`
// after tsc). Each store loads its statements relative to its own module, so the folders keep
// their layout: the Redis store's Lua scripts, the PostgreSQL store's SQL (migrations, queries) and
// the dashboard's static files (served by the HTTP server from dist/dashboard).
import { cpSync, existsSync, mkdirSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';

const assets = [
  ['src/store/redis/scripts', 'dist/store/redis/scripts', '.lua'],
  ['src/store/postgres/sql', 'dist/store/postgres/sql', '.sql'],
  ['src/dashboard', 'dist/dashboard', '.html'],
  ['src/dashboard', 'dist/dashboard', '.js'],
  ['src/dashboard', 'dist/dashboard', '.css'],
];

function copyTree(from, to, ext) {
  let copied = 0;
  mkdirSync(to, { recursive: true });
  for (const name of readdirSync(from)) {
    const src = join(from, name);
    if (statSync(src).isDirectory()) copied += copyTree(src, join(to, name), ext);
    else if (name.endsWith(ext)) {
      cpSync(src, join(to, name));
      copied++;
    }
  }
  return copied;
}

for (const [from, to, ext] of assets) {
  if (!existsSync(from)) continue;
  console.log(`copy-assets: ${copyTree(from, to, ext)} ${ext} files -> ${to}`);
}
