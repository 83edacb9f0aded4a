/**
 * The node's view of `hosts/`: one watch-fed cache of candidacies and decisions (both read at one
 * revision, re-listed after compaction), indexed by namespace. The coordinator decides from it and
 * every observer, `schedule()` handle and `get()` on this node reads from it, so a node opens one
 * watch for the whole module.
 */
import type { RotaContext } from '../core/context.js';
import { type CacheEntry, KvCache } from '../core/kv-cache.js';
import { CompactedError, type RotaError } from '../errors.js';
import type { KeyValue } from '../store/port.js';
import {
  byCodeUnits,
  type CandidacyRecord,
  type DecisionRecord,
  type HostKeys,
  type HostsEntry,
} from './records.js';
import type { HostDecision } from './types.js';

/** A present, well-formed candidacy. */
export interface CandidateEntry {
  readonly hostname: string;
  readonly record: CandidacyRecord;
  readonly kv: KeyValue;
}

/** The stored decision of a namespace; `record` is null when the value is malformed. */
export interface DecisionEntry {
  readonly record: DecisionRecord | null;
  readonly kv: KeyValue;
}

interface NsIndex {
  candidates: Map<string, CandidateEntry>;
  invalid: Map<string, { kv: KeyValue; reason: string }>;
  decision: DecisionEntry | undefined;
}

/** Called with the namespaces that changed, or null after a (re-)listing (everything may have). */
export type StateListener = (namespaces: ReadonlySet<string> | null) => void;

/** Candidates in join order: createRevision ascending, ties by hostname. */
export function joinOrder(a: CandidateEntry, b: CandidateEntry): number {
  return a.kv.createRevision - b.kv.createRevision || byCodeUnits(a.hostname, b.hostname);
}

export class HostsState {
  readonly cache: KvCache<HostsEntry>;
  readonly #index = new Map<string, NsIndex>();
  readonly #listeners = new Set<StateListener>();
  readonly #stop = new AbortController();
  #started: Promise<void> | null = null;
  #syncs = 0;

  constructor(
    private readonly ctx: RotaContext,
    readonly keys: HostKeys,
    private readonly onError: (namespace: string | null, error: RotaError) => void,
  ) {
    this.cache = new KvCache<HostsEntry>({
      store: ctx.store,
      prefix: keys.root,
      decode: (kv) => keys.decode(kv),
      clock: ctx.clock,
      random: ctx.random,
      logger: ctx.logger,
      onChange: (change) => {
        if (change.type === 'sync') {
          this.#rebuild();
          if (++this.#syncs > 1) {
            this.onError(
              null,
              new CompactedError('the hosts watch fell behind a compaction; re-listed', {
                detail: { revision: change.revision },
              }),
            );
          }
          this.#notify(null);
          return;
        }
        const ns = change.type === 'put' ? this.#apply(change.key, change.entry) : this.#remove(change.key);
        if (ns !== null) this.#notify(new Set([ns]));
      },
    });
    ctx.closing.addEventListener('abort', () => this.#stop.abort(), { once: true });
  }

  /** Start listing and watching (once). Resolves after the first listing or when the node closes. */
  start(): Promise<void> {
    this.#started ??= this.cache.start(this.#stop.signal);
    return this.#started;
  }

  /** Stop watching. */
  stop(): void {
    this.#stop.abort();
  }

  get revision(): number {
    return this.cache.revision;
  }

  /** Resolve once the cache applied `revision` (or the node closes). */
  waitFor(revision: number, signal?: AbortSignal): Promise<void> {
    const s = signal ? AbortSignal.any([signal, this.#stop.signal]) : this.#stop.signal;
    if (s.aborted) return Promise.resolve();
    return this.cache.waitFor(revision, s);
  }

  subscribe(listener: StateListener): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  #notify(namespaces: ReadonlySet<string> | null): void {
    for (const l of [...this.#listeners]) {
      try {
        l(namespaces);
      } catch (err) {
        this.ctx.logger.error('a hosts state listener threw; ignored', { error: err });
      }
    }
  }

  #ns(namespace: string): NsIndex {
    let idx = this.#index.get(namespace);
    if (!idx) {
      idx = { candidates: new Map(), invalid: new Map(), decision: undefined };
      this.#index.set(namespace, idx);
    }
    return idx;
  }

  #rebuild(): void {
    this.#index.clear();
    for (const [key, entry] of this.cache.entries) this.#apply(key, entry);
  }

  /** Index one cached key; returns its namespace (null for foreign keys). */
  #apply(key: string, entry: CacheEntry<HostsEntry>): string | null {
    const v = entry.value;
    if (v.kind === 'foreign') return null;
    const idx = this.#ns(v.namespace);
    if (v.kind === 'candidate') {
      idx.invalid.delete(key);
      idx.candidates.set(v.hostname, { hostname: v.hostname, record: v.record, kv: entry.kv });
    } else if (v.kind === 'decision') {
      idx.decision = { record: v.record, kv: entry.kv };
    } else if (v.of === 'decision') {
      idx.decision = { record: null, kv: entry.kv };
    } else {
      for (const [h, c] of idx.candidates) if (c.kv.key === key) idx.candidates.delete(h);
      idx.invalid.set(key, { kv: entry.kv, reason: v.reason });
    }
    return v.namespace;
  }

  #remove(key: string): string | null {
    const v = this.keys.decode({
      key,
      value: new Uint8Array(),
      createRevision: 0,
      modRevision: 0,
      version: 0,
      lease: null,
    });
    if (v.kind === 'foreign') return null;
    const idx = this.#index.get(v.namespace);
    if (!idx) return v.namespace;
    if (key.startsWith(this.keys.decisionsRoot)) idx.decision = undefined;
    else {
      idx.invalid.delete(key);
      for (const [h, c] of idx.candidates) if (c.kv.key === key) idx.candidates.delete(h);
    }
    if (idx.candidates.size === 0 && idx.invalid.size === 0 && !idx.decision) this.#index.delete(v.namespace);
    return v.namespace;
  }

  /** Every namespace with a candidacy or a decision. */
  namespaces(): string[] {
    return [...this.#index.keys()];
  }

  /** Present, well-formed candidates of `namespace` in join order. */
  candidates(namespace: string): CandidateEntry[] {
    const idx = this.#index.get(namespace);
    return idx ? [...idx.candidates.values()].sort(joinOrder) : [];
  }

  /** Malformed candidacy values of `namespace`. */
  invalidCandidates(namespace: string): { kv: KeyValue; reason: string }[] {
    const idx = this.#index.get(namespace);
    return idx ? [...idx.invalid.values()] : [];
  }

  /** The cached candidacy of one host (well-formed only). */
  candidate(namespace: string, hostname: string): CandidateEntry | undefined {
    return this.#index.get(namespace)?.candidates.get(hostname);
  }

  decision(namespace: string): DecisionEntry | undefined {
    return this.#index.get(namespace)?.decision;
  }

  /** The stored decision of `namespace` restricted to present candidacies. */
  filtered(namespace: string): HostDecision {
    const idx = this.#index.get(namespace);
    return filterDecision(namespace, idx?.decision, new Set(idx?.candidates.keys() ?? []));
  }
}

/** Restrict a stored decision to the hostnames in `present`. */
export function filterDecision(
  namespace: string,
  decision: DecisionEntry | undefined,
  present: ReadonlySet<string>,
): HostDecision {
  const record = decision?.record;
  if (!decision || !record) {
    return {
      namespace,
      hosts: [],
      order: [],
      revision: decision?.kv.modRevision ?? 0,
      leader: null,
      decidedAt: null,
    };
  }
  return {
    namespace,
    hosts: record.hosts.filter((h) => present.has(h)),
    order: record.order.filter((h) => present.has(h)),
    revision: decision.kv.modRevision,
    leader: record.leader || null,
    decidedAt: record.decidedAt || null,
  };
}
