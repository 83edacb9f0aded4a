/**
 * The queue's key layout under `P q/`. Items are JSON records; every state has index keys (empty
 * values) whose names sort in the order a claim or the sweep needs them, so each query is one
 * ordered etcd range whose cost does not depend on queue depth. Numbers are zero-padded decimals;
 * queue names and dedup keys are percent-encoded so that `/` in a name cannot collide.
 *
 * | key | for |
 * |---|---|
 * | `i/<id>` | the item record (tombstones too, until purged) |
 * | `s/<seq>/<id>` | listing in seq order |
 * | `seq` | last allocated seq |
 * | `horizon` | changeSeq of the newest purged tombstone (older feed cursors are compacted) |
 * | `queues/<queue>` | every queue that ever had an item (for `countItems()`) |
 * | `dd/<queue>/<key>` | dedup key → holder id |
 * | `x/<queue>/r/<-priority>/<runAt>/<seq>/<id>` | due pending items, in claim order |
 * | `x/<queue>/d/<runAt>/<seq>/<id>` | pending items not yet due when written (moved to `r/` once due) |
 * | `x/<queue>/{c,n,s}/<leaseExpiresAt>/<id>` | claimed, running, resolving items by lease expiry |
 * | `x/<queue>/o/<completedAt>/<seq>/<id>` | completed items, for resolution claims |
 * | `g/lease/<leaseExpiresAt>/<id>` | every leased item, for the sweep |
 * | `g/claimed/<claimedAt>/<id>` | claimed items, for `startTimeout` |
 * | `g/deadline/<startedAt + timeout>/<id>` | running items with a timeout |
 * | `g/unclaimed/<runAt + claimTimeout>/<id>` | pending items with a claim timeout |
 * | `g/expire/<expireAt>/<id>` | completed items, for retention |
 * | `g/tomb/<deletedAt>/<id>` | tombstones, for purging |
 */
import type { ItemRecord } from '../../queue-model.js';

const INT32_MAX = 2_147_483_647;

/** Zero-padded decimal of a non-negative safe integer: string order == number order. */
export const pad = (n: number): string => String(Math.max(0, n)).padStart(16, '0');

const prio = (p: number): string => String(INT32_MAX - p).padStart(10, '0');
const enc = (name: string): string => encodeURIComponent(name);

export class QueueKeys {
  readonly root: string;
  readonly records: string;
  readonly seqIndex: string;
  readonly counter: string;
  readonly horizon: string;
  readonly registry: string;

  constructor(root: string) {
    this.root = root;
    this.records = `${root}i/`;
    this.seqIndex = `${root}s/`;
    this.counter = `${root}seq`;
    this.horizon = `${root}horizon`;
    this.registry = `${root}queues/`;
  }

  record(id: string): string {
    return this.records + id;
  }

  seq(rec: { seq: number; id: string }): string {
    return `${this.seqIndex}${pad(rec.seq)}/${rec.id}`;
  }

  queueOf(registryKey: string): string {
    return decodeURIComponent(registryKey.slice(this.registry.length));
  }

  queueEntry(queue: string): string {
    return this.registry + enc(queue);
  }

  dedup(queue: string, key: string): string {
    return `${this.root}dd/${enc(queue)}/${enc(key)}`;
  }

  /** Prefix of one per-queue index: `r`, `d`, `c`, `n`, `s` or `o`. */
  queueIndex(queue: string, kind: 'r' | 'd' | 'c' | 'n' | 's' | 'o'): string {
    return `${this.root}x/${enc(queue)}/${kind}/`;
  }

  /** Prefix of one global index. */
  global(kind: 'lease' | 'claimed' | 'deadline' | 'unclaimed' | 'expire' | 'tomb'): string {
    return `${this.root}g/${kind}/`;
  }

  ready(rec: ItemRecord): string {
    return `${this.queueIndex(rec.queue, 'r')}${prio(rec.priority)}/${pad(rec.runAt)}/${pad(rec.seq)}/${rec.id}`;
  }

  delayed(rec: ItemRecord): string {
    return `${this.queueIndex(rec.queue, 'd')}${pad(rec.runAt)}/${pad(rec.seq)}/${rec.id}`;
  }

  /**
   * Index keys a stored record certainly has. A pending record has exactly one of its ready and
   * delayed keys (a due delayed key is moved to ready without touching the record), so neither is
   * certain; see {@link possibleKeys}.
   */
  certainKeys(rec: ItemRecord): string[] {
    const keys = [this.seq(rec)];
    const lease = rec.leaseExpiresAt ?? 0;
    switch (rec.state) {
      case 'pending':
        if (rec.claimTimeout !== null)
          keys.push(`${this.global('unclaimed')}${pad(rec.runAt + rec.claimTimeout)}/${rec.id}`);
        break;
      case 'claimed':
        keys.push(`${this.queueIndex(rec.queue, 'c')}${pad(lease)}/${rec.id}`);
        keys.push(`${this.global('lease')}${pad(lease)}/${rec.id}`);
        keys.push(`${this.global('claimed')}${pad(rec.claimedAt ?? 0)}/${rec.id}`);
        break;
      case 'running':
        keys.push(`${this.queueIndex(rec.queue, 'n')}${pad(lease)}/${rec.id}`);
        keys.push(`${this.global('lease')}${pad(lease)}/${rec.id}`);
        if (rec.timeout !== null && rec.startedAt !== null)
          keys.push(`${this.global('deadline')}${pad(rec.startedAt + rec.timeout)}/${rec.id}`);
        break;
      case 'resolving':
        keys.push(`${this.queueIndex(rec.queue, 's')}${pad(lease)}/${rec.id}`);
        keys.push(`${this.global('lease')}${pad(lease)}/${rec.id}`);
        break;
      case 'completed':
        keys.push(`${this.queueIndex(rec.queue, 'o')}${pad(rec.completedAt ?? 0)}/${pad(rec.seq)}/${rec.id}`);
        keys.push(`${this.global('expire')}${pad(rec.expireAt ?? 0)}/${rec.id}`);
        break;
      case 'deleted':
        keys.push(`${this.global('tomb')}${pad(rec.updatedAt)}/${rec.id}`);
        break;
    }
    return keys;
  }

  /** Every index key the stored record may have. */
  possibleKeys(rec: ItemRecord): string[] {
    const keys = this.certainKeys(rec);
    if (rec.state === 'pending') keys.push(this.ready(rec), this.delayed(rec));
    return keys;
  }

  /** The index keys a record written at `now` must have. */
  targetKeys(rec: ItemRecord, now: number): string[] {
    const keys = this.certainKeys(rec);
    if (rec.state === 'pending') keys.push(rec.runAt <= now ? this.ready(rec) : this.delayed(rec));
    return keys;
  }
}

/** The item id at the end of an index key. */
export const idOfIndexKey = (key: string): string => key.slice(key.lastIndexOf('/') + 1);

/** The first number after `prefix` in an index key (its time). */
export const timeOfIndexKey = (key: string, prefix: string): number =>
  Number(key.slice(prefix.length, prefix.length + 16));
