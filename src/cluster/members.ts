/**
 * Membership (cluster.md §2.2): a member is live exactly as long as its key
 * `cluster/members/<nodeId>` exists. The node keeps a watch-fed cache of the prefix for
 * `members()`, and `watchMembers()` streams sync/joined/updated/left events that survive
 * disconnects and compaction without a gap.
 */
import { decodeJson, type RotaContext } from '../core/context.js';
import type { EventBus } from '../core/events.js';
import { type CacheChange, KvCache } from '../core/kv-cache.js';
import type { KeyValue } from '../store/port.js';
import { Channel } from '../util/channel.js';
import { checkInt, checkOptions, checkSignal } from '../validate.js';
import type { MemberRecord } from './session.js';

/** A live member as seen by this node. */
export interface Member extends MemberRecord {
  /** createRevision of the member key: when this session joined. */
  readonly joinedRevision: number;
}

export type MemberEvent =
  | { type: 'sync'; members: Member[]; revision: number }
  | { type: 'joined' | 'updated'; member: Member; revision: number }
  | { type: 'left'; nodeId: string; member: Member | undefined; revision: number };

declare module '../core/events.js' {
  interface RotaEventMap {
    'member:joined': { nodeId: string; sessionId: string };
    'member:left': { nodeId: string };
  }
}

export function decodeMember(kv: KeyValue): Member | undefined {
  const record = decodeJson<MemberRecord>(kv.value);
  if (typeof record !== 'object' || record === null || typeof record.nodeId !== 'string') return undefined;
  if (typeof record.sessionId !== 'string') return undefined;
  return { ...record, joinedRevision: kv.createRevision };
}

export class Membership {
  readonly prefix: string;
  readonly #cache: KvCache<Member>;

  constructor(
    private readonly ctx: RotaContext,
    private readonly events: EventBus,
  ) {
    this.prefix = ctx.keys.prefix('cluster', 'members');
    this.#cache = new KvCache<Member>({
      store: ctx.store,
      prefix: this.prefix,
      decode: decodeMember,
      clock: ctx.clock,
      random: ctx.random,
      logger: ctx.logger,
      onChange: (change) => this.#onChange(change),
    });
  }

  /** Start the cache (resolves after the first listing). */
  start(): Promise<void> {
    return this.#cache.start(this.ctx.closing);
  }

  #onChange(change: CacheChange<Member>): void {
    if (change.type === 'put' && !change.prev) {
      this.events.emit('member:joined', {
        nodeId: change.entry.value.nodeId,
        sessionId: change.entry.value.sessionId,
      });
    } else if (change.type === 'delete' && change.prev) {
      this.events.emit('member:left', { nodeId: change.prev.value.nodeId });
    }
  }

  /** Resolve once the cache has seen revision `revision` (e.g. of a write just made). */
  waitFor(revision: number, signal?: AbortSignal): Promise<void> {
    return this.#cache.waitFor(revision, signal);
  }

  /** Live members: from the watch-fed cache, or read from the store now with `fresh: true`. */
  async list(options: { fresh?: boolean } = {}): Promise<Member[]> {
    checkOptions('options', options, ['fresh']);
    this.ctx.assertOpen();
    if (options.fresh) {
      const { kvs } = await this.ctx.retry(() => this.ctx.store.range(this.prefix));
      return kvs.map((kv) => safe(kv)).filter((m): m is Member => m !== undefined);
    }
    await this.#cache.ready;
    return [...this.#cache.entries.values()].map((e) => e.value);
  }

  /** The cached member record of `nodeId`, if live. */
  get(nodeId: string): Member | undefined {
    for (const e of this.#cache.entries.values()) if (e.value.nodeId === nodeId) return e.value;
    return undefined;
  }

  /**
   * Stream membership: a `sync` with the full list first (unless resuming with `fromRevision`),
   * then `joined`, `updated` and `left` in revision order. A compacted revision yields a fresh
   * `sync` instead of an error.
   */
  watch(options: { signal?: AbortSignal; fromRevision?: number } = {}): AsyncIterableIterator<MemberEvent> {
    checkOptions('options', options, ['signal', 'fromRevision']);
    checkSignal('options.signal', options.signal);
    if (options.fromRevision !== undefined) checkInt('options.fromRevision', options.fromRevision, 1);
    this.ctx.assertOpen();
    const stop = new AbortController();
    const out = new Channel<MemberEvent>({ signal: options.signal, onClose: () => stop.abort() });
    const onClosing = () => out.end();
    this.ctx.closing.addEventListener('abort', onClosing, { once: true });
    stop.signal.addEventListener('abort', () => this.ctx.closing.removeEventListener('abort', onClosing));
    const cache: KvCache<Member> = new KvCache<Member>({
      store: this.ctx.store,
      prefix: this.prefix,
      decode: decodeMember,
      clock: this.ctx.clock,
      random: this.ctx.random,
      logger: this.ctx.logger,
      ...(options.fromRevision !== undefined ? { fromRevision: options.fromRevision } : {}),
      onChange: (change) => {
        if (change.type === 'sync') {
          out.push({
            type: 'sync',
            members: [...cache.entries.values()].map((e) => e.value),
            revision: change.revision,
          });
        } else if (change.type === 'put') {
          const joined = change.entry.kv.version === 1;
          out.push({
            type: joined ? 'joined' : 'updated',
            member: change.entry.value,
            revision: change.revision,
          });
        } else {
          const nodeId =
            change.prev?.value.nodeId ?? decodeURIComponent(change.key.slice(this.prefix.length));
          out.push({ type: 'left', nodeId, member: change.prev?.value, revision: change.revision });
        }
      },
    });
    void cache.start(stop.signal);
    return out;
  }
}

function safe(kv: KeyValue): Member | undefined {
  try {
    return decodeMember(kv);
  } catch {
    return undefined;
  }
}
