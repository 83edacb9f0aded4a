/**
 * The backend's SQL lives in `.sql` files next to this module: `sql/queries/` holds the statements
 * the client sends, `sql/migrations/<version>/` the schema (tables and server-side functions).
 */
import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { type RotaError, StoreError } from '../../errors.js';

const root = new URL('./sql/', import.meta.url);
const cache = new Map<string, string>();
/** Statement text → prepared-statement name (`rota_<file>`), for the texts `query` handed out. */
const names = new Map<string, string>();

function missing(url: URL, cause: unknown): RotaError {
  return new StoreError(
    `cannot read ${fileURLToPath(url)}: the PostgreSQL store's SQL files must sit next to its modules`,
    { cause },
  );
}

function read(url: URL): string {
  try {
    return readFileSync(url, 'utf8');
  } catch (cause) {
    throw missing(url, cause);
  }
}

function list(url: URL) {
  try {
    return readdirSync(url, { withFileTypes: true });
  } catch (cause) {
    throw missing(url, cause);
  }
}

/** The text of `sql/queries/<name>.sql`. */
export function query(name: string): string {
  let text = cache.get(name);
  if (text === undefined) {
    text = read(new URL(`queries/${name}.sql`, root));
    cache.set(name, text);
    names.set(text, `rota_${name}`);
  }
  return text;
}

/**
 * The prepared-statement name of a text `query` returned, or undefined for any other text. The
 * set of names is fixed (one per file), so each connection prepares at most that many.
 */
export function statementName(text: string): string | undefined {
  return names.get(text);
}

/** The schema versions this code knows, ascending (the folders under `sql/migrations/`). */
export function migrationVersions(): number[] {
  return list(new URL('migrations/', root))
    .filter((d) => d.isDirectory() && /^\d+$/.test(d.name))
    .map((d) => Number(d.name))
    .sort((a, b) => a - b);
}

/** The files of one migration, concatenated in name order. */
export function migrationText(version: number): string {
  const dir = new URL(`migrations/${version}/`, root);
  return list(dir)
    .map((d) => d.name)
    .filter((name) => name.endsWith('.sql'))
    .sort()
    .map((name) => read(new URL(name, dir)))
    .join('\n');
}
