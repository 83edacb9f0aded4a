/**
 * What every queue operation shares: reading records in one snapshot, and committing transitions
 * as guarded etcd txns. A transition whose guard fails (someone else wrote the item since it was
 * read) is reported as a conflict; the caller re-reads and re-applies the queue model.
 */
import type { IRangeRequest, IRangeResponse, IRequestOp, ITxnRequest, ITxnResponse } from 'etcd3';
import type { NewItem } from '../../port.js';
import { createItem, type ItemRecord } from '../../queue-model.js';
import { num } from '../codec.js';
import type { EtcdConnection } from '../connection.js';
import type { QueueKeys } from './keys.js';
import { ABSENT, decodeRecord, type Observed } from './record.js';
import {
  atomicTxn,
  chunkGroups,
  independentTxn,
  modIs,
  promotionGroup,
  putOp,
  readKeysTxn,
  transitionGroup,
  type WriteGroup,
} from './requests.js';

/** One item transition to commit. */
export interface Plan {
  id: string;
  /** The record as read (its modRevision guards the write). */
  observed: Observed;
  /** The new record; null purges it. */
  after: ItemRecord | null;
  /** A dead-letter copy to create in the same txn. */
  deadLetter?: NewItem | null;
  /** Extra writes of the same group (e.g. releasing a dedup key). */
  extraOps?: IRequestOp[];
}

/** A due delayed index key to move to the ready index. */
export interface Promotion {
  from: string;
  to: string;
}

/** Bytes kept free in every request for etcd's own framing. */
const REQUEST_MARGIN = 64 * 1024;

export class QueueContext {
  readonly conn: EtcdConnection;
  readonly keys: QueueKeys;
  readonly #now: () => number;

  constructor(conn: EtcdConnection, keys: QueueKeys, now: () => number) {
    this.conn = conn;
    this.keys = keys;
    this.#now = now;
  }

  now(): number {
    return this.#now();
  }

  get maxTxnOps(): number {
    return this.conn.settings.maxTxnOps;
  }

  get maxBytes(): number {
    return this.conn.settings.maxRequestBytes - REQUEST_MARGIN;
  }

  /** One read-only txn of ranges (split into several when there are more than etcd allows). */
  async ranges(what: string, requests: IRangeRequest[]): Promise<IRangeResponse[]> {
    const size = this.maxTxnOps;
    const chunks: IRangeRequest[][] = [];
    for (let i = 0; i < requests.length; i += size) chunks.push(requests.slice(i, i + size));
    const results = await Promise.all(
      chunks.map((chunk) =>
        this.conn.read(what, () =>
          this.conn.client.kv.txn({ compare: [], success: chunk.map((r) => ({ request_range: r })) }),
        ),
      ),
    );
    return results.flatMap((res) => res.responses.map((r) => r.response_range));
  }

  /** The current records of `ids` (absent ones as {@link ABSENT}). */
  async readRecords(what: string, ids: Iterable<string>): Promise<Map<string, Observed>> {
    const list = [...new Set(ids)];
    const out = new Map<string, Observed>();
    const size = this.maxTxnOps;
    const chunks: string[][] = [];
    for (let i = 0; i < list.length; i += size) chunks.push(list.slice(i, i + size));
    await Promise.all(
      chunks.map(async (chunk) => {
        const res = await this.conn.read(what, () =>
          this.conn.client.kv.txn(readKeysTxn(chunk.map((id) => this.keys.record(id)))),
        );
        chunk.forEach((id, i) => {
          const kv = res.responses[i]?.response_range?.kvs[0];
          out.set(id, kv ? { mod: num(kv.mod_revision), rec: decodeRecord(kv) } : ABSENT);
        });
      }),
    );
    return out;
  }

  /** Execute a write txn. */
  async write(what: string, request: ITxnRequest): Promise<ITxnResponse> {
    return this.conn.write(what, () => this.conn.client.kv.txn(request));
  }

  /**
   * Commit independent transitions and index moves. Returns, per plan id, the revision it was
   * written at, or null when its guard failed (a conflict to re-read).
   */
  async commit(
    what: string,
    plans: Plan[],
    promotions: Promotion[] = [],
  ): Promise<Map<string, number | null>> {
    const out = new Map<string, number | null>();
    const now = this.now();
    const simple = plans.filter((p) => !p.deadLetter);
    const groups: { id: string | null; group: WriteGroup }[] = [
      ...simple.map((p) => ({
        id: p.id,
        group: transitionGroup(this.keys, p.id, p.observed, p.after, now, p.extraOps),
      })),
      ...promotions.map((m) => ({ id: null, group: promotionGroup(m.from, m.to) })),
    ];
    const byGroup = new Map(groups.map((g) => [g.group, g.id]));
    const chunks = chunkGroups(
      groups.map((g) => g.group),
      { maxTxnOps: this.maxTxnOps, maxBytes: this.maxBytes },
    );
    await Promise.all(
      chunks.map(async (chunk) => {
        const res = await this.write(what, independentTxn(chunk));
        const revision = num(res.header.revision);
        chunk.forEach((group, i) => {
          const id = byGroup.get(group);
          if (id) out.set(id, res.responses[i]?.response_txn?.succeeded ? revision : null);
        });
      }),
    );
    for (const plan of plans)
      if (plan.deadLetter) out.set(plan.id, await this.#commitWithDeadLetter(what, plan));
    return out;
  }

  /**
   * A transition that dead-letters the item: the copy `dl-<id>` is created in the same txn unless
   * a live item already has that id (deterministic id: a retried fail never copies twice).
   */
  async #commitWithDeadLetter(what: string, plan: Plan): Promise<number | null> {
    const dl = plan.deadLetter as NewItem;
    const now = this.now();
    const res = await this.conn.read(what, () =>
      this.conn.client.kv.txn(readKeysTxn([this.keys.record(dl.id), this.keys.counter])),
    );
    const dlKv = res.responses[0]?.response_range?.kvs[0];
    const counterKv = res.responses[1]?.response_range?.kvs[0];
    const existing: Observed = dlKv ? { mod: num(dlKv.mod_revision), rec: decodeRecord(dlKv) } : ABSENT;
    const groups = [transitionGroup(this.keys, plan.id, plan.observed, plan.after, now, plan.extraOps)];
    let shared: WriteGroup | null = null;
    if (!existing.rec || existing.rec.state === 'deleted') {
      const counterMod = counterKv ? num(counterKv.mod_revision) : 0;
      const seq = (counterKv ? num(counterKv.value.toString(), 'seq') : 0) + 1;
      groups.push(transitionGroup(this.keys, dl.id, existing, createItem(dl, now, seq), now));
      shared = {
        compares: [modIs(this.keys.counter, counterMod)],
        ops: [putOp(this.keys.counter, Buffer.from(String(seq))), putOp(this.keys.queueEntry(dl.queue))],
        size: 0,
      };
    }
    const txn = await this.write(what, atomicTxn(groups, shared));
    return txn.succeeded ? num(txn.header.revision) : null;
  }
}
