/**
 * Placement (pool.md §2.3): which worker should run a job. The default is rendezvous
 * (highest-random-weight) hashing: the ranking of a key is every active worker by descending
 * score (hash of `workerId` ‖ 0x00 ‖ `key`), ties by worker id; the target is
 * `rank[rankOffset mod n]`. A join moves only the keys that rank the newcomer first; a leave moves
 * only the leaver's keys, whichever worker it was. The `placement` test option replaces all of it.
 *
 * Results are memoised per key and recomputed when the worker set or the key's `rankOffset`
 * changes, so a reconcile pass that follows a job change costs nothing for the other jobs.
 */
import { type Hash64, hash64, pairScore, scoresInto, workerHash } from './hash.js';

/**
 * A custom placement (test seam, like Pulse's hasher): given the key, the active worker ids
 * (oldest first) and the attempt (`rankOffset`), return the id of the worker that should run it.
 */
export type PlacementFn = (key: string, workers: readonly string[], attempt: number) => string;

/** An active worker as placement sees it. */
export interface PlacedWorker {
  readonly id: string;
  readonly createdAt: number;
}

/** The target of a key and the next-ranked worker (the fallback). */
export interface Pick {
  readonly target: string | null;
  readonly next: string | null;
}

interface Memo {
  /** hash64 of the key, computed once. */
  hash: Hash64;
  version: number;
  offset: number;
  pick: Pick;
}

const NONE: Pick = Object.freeze({ target: null, next: null });

export class Placement {
  #ids: string[] = [];
  #hashes: Hash64[] = [];
  #scores = new Float64Array(0);
  #order: number[] = [];
  #version = 0;
  readonly #memo = new Map<string, Memo>();

  constructor(
    private readonly custom?: PlacementFn,
    private readonly onBadPick?: (key: string, picked: unknown) => void,
  ) {}

  /** Active worker ids, oldest first (ties by id). */
  get workers(): readonly string[] {
    return this.#ids;
  }

  /** Bumped whenever the worker set changes. */
  get version(): number {
    return this.#version;
  }

  /** Replace the active worker set; returns true when it changed. */
  setWorkers(workers: readonly PlacedWorker[]): boolean {
    const sorted = [...workers].sort((a, b) =>
      a.createdAt !== b.createdAt ? a.createdAt - b.createdAt : a.id < b.id ? -1 : a.id > b.id ? 1 : 0,
    );
    const ids = sorted.map((w) => w.id);
    if (ids.length === this.#ids.length && ids.every((id, i) => id === this.#ids[i])) return false;
    this.#ids = ids;
    this.#hashes = ids.map(workerHash);
    this.#scores = new Float64Array(ids.length);
    this.#order = ids.map((_, i) => i);
    this.#version++;
    return true;
  }

  /** Forget the memo of a key (its job is gone). */
  forget(key: string): void {
    this.#memo.delete(key);
  }

  /** The target of `key` at `offset` and the worker ranked right after it. */
  pick(key: string, offset: number): Pick {
    // A custom placement may change its mind at any time (tests switch hashers): never memoised.
    if (this.custom) return this.#compute(key, offset);
    let memo = this.#memo.get(key);
    if (memo && memo.version === this.#version && memo.offset === offset) return memo.pick;
    if (!memo) {
      memo = { hash: hash64(key), version: -1, offset, pick: NONE };
      this.#memo.set(key, memo);
    }
    memo.pick = this.#rank(memo.hash, offset);
    memo.version = this.#version;
    memo.offset = offset;
    return memo.pick;
  }

  #compute(key: string, offset: number): Pick {
    if (this.#ids.length === 0) return NONE;
    return { target: this.#custom(key, offset), next: this.#custom(key, offset + 1) };
  }

  #rank(hash: Hash64, offset: number): Pick {
    const n = this.#ids.length;
    if (n === 0) return NONE;
    const i = offset % n;
    const j = (offset + 1) % n;
    const scores = this.#scores;
    scoresInto(this.#hashes, hash, scores);
    if (i === 0 && j <= 1) {
      // The common case: the best and the second best, in one pass.
      const ids = this.#ids;
      let best = 0;
      let second = -1;
      let bestScore = scores[0] as number;
      let secondScore = -1;
      for (let w = 1; w < n; w++) {
        const s = scores[w] as number;
        if (s > bestScore || (s === bestScore && (ids[w] as string) < (ids[best] as string))) {
          second = best;
          secondScore = bestScore;
          best = w;
          bestScore = s;
        } else if (
          second < 0 ||
          s > secondScore ||
          (s === secondScore && (ids[w] as string) < (ids[second] as string))
        ) {
          second = w;
          secondScore = s;
        }
      }
      const next = j === 0 ? best : second;
      return { target: ids[best] ?? null, next: ids[next] ?? null };
    }
    const order = this.#order;
    for (let w = 0; w < n; w++) order[w] = w;
    order.sort((a, b) => (this.#beats(a, b) ? -1 : this.#beats(b, a) ? 1 : 0));
    return { target: this.#ids[order[i] as number] ?? null, next: this.#ids[order[j] as number] ?? null };
  }

  /** Whether worker index `a` ranks before `b` for the scores just computed. */
  #beats(a: number, b: number): boolean {
    const sa = this.#scores[a] as number;
    const sb = this.#scores[b] as number;
    if (sa !== sb) return sa > sb;
    return (this.#ids[a] as string) < (this.#ids[b] as string);
  }

  #custom(key: string, attempt: number): string | null {
    let picked: unknown;
    try {
      picked = this.custom?.(key, this.#ids, attempt);
    } catch (err) {
      picked = err;
    }
    if (typeof picked === 'string' && this.#ids.includes(picked)) return picked;
    this.onBadPick?.(key, picked);
    return null;
  }
}

/** The full rendezvous ranking of `key` over `workerIds` (best first); for tests and tools. */
export function rank(key: string, workerIds: readonly string[]): string[] {
  const k = hash64(key);
  const scored = workerIds.map((id) => ({ id, s: pairScore(workerHash(id), k) }));
  scored.sort((a, b) => (a.s !== b.s ? b.s - a.s : a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  return scored.map((x) => x.id);
}
