/**
 * The KV half of the port on etcd: every call is one etcd txn (two when a `value !=` compare meets
 * an absent key). Revisions are etcd's own; the store's current revision is the modRevision of its
 * marker key, so other users of the cluster never move it.
 */
import type { IKeyValue, IResponseOp, ITxnResponse } from 'etcd3';
import { InvalidArgumentError, LeaseNotFoundError } from '../../errors.js';
import type {
  DeleteResult,
  GetResult,
  KeyValue,
  PutResult,
  RangeResult,
  StoreStatus,
  TxnOp,
  TxnOpResult,
  TxnRequest,
  TxnResult,
} from '../port.js';
import { num, toKeyValue } from './codec.js';
import type { EtcdConnection } from './connection.js';
import {
  type BranchShape,
  branchRequest,
  compactRequest,
  compareRequest,
  createMarkerRequest,
  deleteRequest,
  getRequest,
  pinnedTxnRequest,
  putRequest,
  rangeRequest,
  statusRequest,
  UnknownLeaseId,
} from './kv-requests.js';
import type { Layout } from './layout.js';

const MAX_PIN_ATTEMPTS = 50;

function rangeKvs(op: IResponseOp | undefined): IKeyValue[] {
  return op?.response_range?.kvs ?? [];
}

export class EtcdKv {
  readonly #conn: EtcdConnection;
  readonly #layout: Layout;
  readonly #strip: number;
  /** Highest compaction revision etcd itself reported to a watch of this client. */
  physicalCompactRevision = 0;

  constructor(conn: EtcdConnection, layout: Layout) {
    this.#conn = conn;
    this.#layout = layout;
    this.#strip = layout.kvPrefix.length;
  }

  #kv(kv: IKeyValue | null | undefined): KeyValue | null {
    return kv ? toKeyValue(kv, this.#strip) : null;
  }

  /** The store revision from a marker read; a store never written gets its marker now. */
  async #revision(marker: IResponseOp | undefined): Promise<number> {
    const kv = rangeKvs(marker)[0];
    return kv ? num(kv.mod_revision) : this.#createMarker();
  }

  /**
   * Write the marker of a store that has none yet (once per store), so even an empty store has a
   * revision of its own that other users of the cluster do not move.
   */
  async #createMarker(): Promise<number> {
    const res = await this.#write('status', () =>
      this.#conn.client.kv.txn(createMarkerRequest(this.#layout)),
    );
    return res.succeeded ? num(res.header.revision) : num(rangeKvs(res.responses[0])[0]?.mod_revision);
  }

  async #write(what: string, fn: () => Promise<ITxnResponse>): Promise<ITxnResponse> {
    try {
      return await this.#conn.write(what, fn);
    } catch (err) {
      if (err instanceof UnknownLeaseId) {
        throw new LeaseNotFoundError(`${what}: lease ${err.message} not found`, {
          detail: { lease: err.message },
        });
      }
      throw err;
    }
  }

  async get(key: string): Promise<GetResult> {
    const res = await this.#conn.read('get', () => this.#conn.client.kv.txn(getRequest(this.#layout, key)));
    return { kv: this.#kv(rangeKvs(res.responses[0])[0]), revision: await this.#revision(res.responses[1]) };
  }

  async range(prefix: string, limit?: number, startAfter?: string): Promise<RangeResult> {
    const res = await this.#conn.read('range', () =>
      this.#conn.client.kv.txn(rangeRequest(this.#layout, prefix, limit, startAfter)),
    );
    const r = res.responses[0]?.response_range;
    return {
      kvs: (r?.kvs ?? []).map((kv) => toKeyValue(kv, this.#strip)),
      more: r?.more ?? false,
      revision: await this.#revision(res.responses[1]),
    };
  }

  async put(key: string, value: Uint8Array, lease?: string): Promise<PutResult> {
    const res = await this.#write('put', () =>
      this.#conn.client.kv.txn(putRequest(this.#layout, key, value, lease)),
    );
    return { revision: num(res.header.revision), prev: this.#kv(res.responses[0]?.response_put?.prev_kv) };
  }

  async delete(key: string, prefix: boolean): Promise<DeleteResult> {
    const res = await this.#write('delete', () =>
      this.#conn.client.kv.txn(deleteRequest(this.#layout, key, prefix)),
    );
    if (!res.succeeded) return { revision: await this.#revision(res.responses[0]), deleted: 0, prev: [] };
    const d = res.responses[0]?.response_delete_range;
    return {
      revision: num(res.header.revision),
      deleted: num(d?.deleted, 'count'),
      prev: (d?.prev_kvs ?? []).map((kv) => toKeyValue(kv, this.#strip)),
    };
  }

  async txn(request: TxnRequest): Promise<TxnResult> {
    const notEqual = request.compare.filter((c) => c.target === 'value' && c.op === '!=');
    for (let attempt = 0; attempt < MAX_PIN_ATTEMPTS; attempt++) {
      // etcd's `value !=` is false on an absent key; the port's is true. Settle presence first.
      const present = new Map<string, boolean>();
      if (notEqual.length > 0) {
        const probe = await this.#conn.read('txn', () =>
          this.#conn.client.kv.txn({
            compare: [],
            success: notEqual.map((c) => ({
              request_range: { key: this.#layout.userKey(c.key), count_only: true },
            })),
          }),
        );
        notEqual.forEach((c, i) => {
          present.set(c.key, num(probe.responses[i]?.response_range?.count, 'count') > 0);
        });
      }
      const compares = request.compare.filter(
        (c) => !(c.target === 'value' && c.op === '!=' && present.get(c.key) === false),
      );
      const success = branchRequest(this.#layout, request.success);
      const failure = branchRequest(this.#layout, request.failure ?? []);
      const inner = {
        compare: compares.map((c) => compareRequest(this.#layout, c)),
        success: success.ops,
        failure: failure.ops,
      };
      const pins = [...present].map(([key, isPresent]) => ({ key, present: isPresent }));
      const outer = pins.length > 0 ? pinnedTxnRequest(this.#layout, pins, inner) : inner;
      const res = await this.#write('txn', () => this.#conn.client.kv.txn(outer));
      if (pins.length > 0 && !res.succeeded) continue;
      const ran = pins.length > 0 ? (res.responses[0]?.response_txn as ITxnResponse) : res;
      return ran.succeeded
        ? await this.#txnResult(ran, res.header, success.shape, request.success)
        : await this.#txnResult(ran, res.header, failure.shape, request.failure ?? []);
    }
    throw new InvalidArgumentError('txn: the keys of its value != compares kept changing; try again', {
      detail: { field: 'request.compare' },
    });
  }

  async #txnResult(
    ran: ITxnResponse,
    header: ITxnResponse['header'],
    shape: BranchShape,
    ops: TxnOp[],
  ): Promise<TxnResult> {
    const results: TxnOpResult[] = [];
    let wrote = shape.hasPut;
    for (let i = 0; i < shape.count; i++) {
      const r = ran.responses[shape.offset + i];
      if (ops[i]?.type === 'get') {
        results.push({ type: 'get', kv: this.#kv(r?.response_range?.kvs[0]) });
      } else if (r?.response_range) {
        results.push({
          type: 'range',
          kvs: r.response_range.kvs.map((kv) => toKeyValue(kv, this.#strip)),
          more: r.response_range.more,
        });
      } else if (r?.response_put) {
        results.push({ type: 'put', prev: this.#kv(r.response_put.prev_kv) });
      } else if (r?.response_delete_range) {
        const deleted = num(r.response_delete_range.deleted, 'count');
        if (deleted > 0) wrote = true;
        results.push({
          type: 'delete',
          deleted,
          prev: r.response_delete_range.prev_kvs.map((kv) => toKeyValue(kv, this.#strip)),
        });
      }
    }
    const revision = wrote ? num(header.revision) : await this.#revision(ran.responses[0]);
    return { succeeded: ran.succeeded, revision, results };
  }

  async compact(revision: number): Promise<void> {
    for (;;) {
      const res = await this.#conn.read('compact', () =>
        this.#conn.client.kv.txn(statusRequest(this.#layout)),
      );
      const current = await this.#revision(res.responses[0]);
      if (revision > current) {
        throw new InvalidArgumentError(`cannot compact revision ${revision}: the store is at ${current}`, {
          detail: { field: 'revision' },
        });
      }
      const stored = rangeKvs(res.responses[1])[0];
      const compacted = stored ? Number(stored.value.toString()) : 0;
      if (revision <= compacted) break;
      const cas = await this.#write('compact', () =>
        this.#conn.client.kv.txn(
          compactRequest(this.#layout, stored ? num(stored.mod_revision) : 0, revision),
        ),
      );
      if (cas.succeeded) break;
    }
    if (this.#conn.settings.physicalCompaction) {
      try {
        await this.#conn.write('compact', () => this.#conn.client.kv.compact({ revision }));
      } catch (err) {
        // Already compacted further by someone else: nothing left to do.
        if (!(err instanceof Error && err.message.includes('compacted'))) throw err;
      }
    }
  }

  async status(): Promise<StoreStatus> {
    const res = await this.#conn.read('status', () => this.#conn.client.kv.txn(statusRequest(this.#layout)));
    const stored = rangeKvs(res.responses[1])[0];
    const logical = stored ? Number(stored.value.toString()) : 0;
    return {
      revision: await this.#revision(res.responses[0]),
      compactRevision: Math.max(logical, this.physicalCompactRevision),
    };
  }

  /** This store's logical compaction revision (watches from at or below it are refused). */
  async compactRevision(): Promise<number> {
    const res = await this.#conn.read('watch', () =>
      this.#conn.client.kv.range({ key: this.#layout.compact }),
    );
    const stored = res.kvs[0];
    return Math.max(stored ? Number(stored.value.toString()) : 0, this.physicalCompactRevision);
  }
}
