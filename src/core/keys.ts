/**
 * Key layout (cluster.md §5): every key lives under `rota/<namespace>/`, and every user-supplied
 * name is percent-encoded where it forms part of a key, so a `/` in a name never opens a level.
 */

/** Percent-encode a user-supplied name for use as one key segment. */
export function encodeName(name: string): string {
  return encodeURIComponent(name);
}

/** Decode a key segment produced by {@link encodeName}. */
export function decodeName(segment: string): string {
  return decodeURIComponent(segment);
}

/** Builds the keys of one namespace. Segments passed to `key` must already be encoded. */
export class Keyspace {
  /** `rota/<namespace>/` */
  readonly root: string;

  constructor(readonly namespace: string) {
    this.root = `rota/${encodeName(namespace)}/`;
  }

  /** `root` + segments joined with `/`. */
  key(...segments: string[]): string {
    return this.root + segments.join('/');
  }

  /** A prefix ending in `/`, for ranges and watches. */
  prefix(...segments: string[]): string {
    return `${this.root}${segments.join('/')}/`;
  }

  /** The part of `key` after `prefix`, split into decoded segments. */
  rest(prefix: string, key: string): string[] {
    return key.slice(prefix.length).split('/').map(decodeName);
  }
}
