/**
 * The backend's SQL lives in `.sql` files next to this module: `sql/queries/` holds the statements
 * the client sends, `sql/migrations/<version>/` the schema (tables and server-side functions).
 */
import { readdirSync, readFileSync } from 'node:fs';

const root = new URL('./sql/', import.meta.url);
const cache = new Map<string, string>();

/** The text of `sql/queries/<name>.sql`. */
export function query(name: string): string {
  let text = cache.get(name);
  if (text === undefined) {
    text = readFileSync(new URL(`queries/${name}.sql`, root), 'utf8');
    cache.set(name, text);
  }
  return text;
}

/** The schema versions this code knows, ascending (the folders under `sql/migrations/`). */
export function migrationVersions(): number[] {
  return readdirSync(new URL('migrations/', root), { withFileTypes: true })
    .filter((d) => d.isDirectory() && /^\d+$/.test(d.name))
    .map((d) => Number(d.name))
    .sort((a, b) => a - b);
}

/** The files of one migration, concatenated in name order. */
export function migrationText(version: number): string {
  const dir = new URL(`migrations/${version}/`, root);
  return readdirSync(dir)
    .filter((name) => name.endsWith('.sql'))
    .sort()
    .map((name) => readFileSync(new URL(name, dir), 'utf8'))
    .join('\n');
}
