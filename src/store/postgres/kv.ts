/**
 * The KV half of the port over PostgreSQL: reads are single statements (one snapshot gives the
 * data and the revision it was read at); writes go through `kv_txn`/`kv_revoke` (one round trip
 * each), which lock the revision counter, expire due leases and append to the changelog.
 */
import { LeaseNotFoundError, StoreCorruptError } from '../../errors.js';
import { toSafeInteger } from '../keys.js';
import type {
  DeleteResult,
  GetResult,
  KeyValue,
  Lease,
  LeaseInfo,
  PutResult,
  RangeOptions,
  RangeResult,
  StoreStatus,
  TxnOp,
  TxnOpResult,
  TxnRequest,
  TxnResult,
} from '../port.js';
import type { Db } from './db.js';
import { query } from './sql.js';

/** Leases a write expires before its own change (the rest are left to the background sweep). */
export const WRITE_SWEEP_LIMIT = 64;
/** Lease ids are 16 hex digits (lease-grant.sql); anything else names no lease. */
const LEASE_ID = /^[0-9a-f]{16}$/;

interface KvRow {
  key: string | null;
  value: Buffer | null;
  create_revision: string | null;
  mod_revision: string | null;
  version: string | null;
  lease: string | null;
}

interface TxnRow {
  r_op: number;
  r_key: string | null;
  r_value: Buffer | null;
  r_create: string | null;
  r_mod: string | null;
  r_version: string | null;
  r_lease: string | null;
  r_flag: boolean | null;
  r_revision: string | null;
}

/** A plain Uint8Array view of a driver Buffer (no copy). */
function bytes(buffer: Buffer | null): Uint8Array {
  if (!buffer) return new Uint8Array(0);
  return new Uint8Array(buffer.buffer, buffer.byteOffset, buffer.byteLength);
}

function toBuffer(value: Uint8Array): Buffer {
  return Buffer.from(value.buffer, value.byteOffset, value.byteLength);
}

function kvOf(row: KvRow): KeyValue {
  return {
    key: row.key as string,
    value: bytes(row.value),
    createRevision: toSafeInteger(row.create_revision ?? 0),
    modRevision: toSafeInteger(row.mod_revision ?? 0),
    version: toSafeInteger(row.version ?? 0, 'version'),
    lease: row.lease,
  };
}

function txnKv(row: TxnRow): KeyValue {
  return kvOf({
    key: row.r_key,
    value: row.r_value,
    create_revision: row.r_create,
    mod_revision: row.r_mod,
    version: row.r_version,
    lease: row.r_lease,
  });
}

/** Wire form of a txn: JSON for compares and ops, values as a separate bytea array. */
function encodeTxn(request: TxnRequest): unknown[] {
  const values: Buffer[] = [];
  const value = (v: Uint8Array) => values.push(toBuffer(v));
  const compares = request.compare.map((c) =>
    c.target === 'value'
      ? { k: c.key, t: c.target, o: c.op, v: value(c.value) }
      : { k: c.key, t: c.target, o: c.op, n: c.value },
  );
  const ops = (list: TxnOp[]) =>
    list.map((op) => {
      switch (op.type) {
        case 'get':
          return { t: 'get', k: op.key };
        case 'range':
          return { t: 'range', k: op.prefix, l: op.limit ?? null };
        case 'put':
          return { t: 'put', k: op.key, v: value(op.value), e: op.lease ?? null };
        default:
          return { t: 'delete', k: op.key, p: op.prefix ?? false };
      }
    });
  return [
    JSON.stringify(compares),
    JSON.stringify(ops(request.success)),
    JSON.stringify(ops(request.failure ?? [])),
    values,
    WRITE_SWEEP_LIMIT,
  ];
}

function decodeTxn(request: TxnRequest, rows: TxnRow[]): TxnResult {
  const header = rows.find((r) => r.r_op === -1);
  const succeeded = header?.r_flag === true;
  const revision = toSafeInteger(header?.r_revision ?? 0);
  const ops = succeeded ? request.success : (request.failure ?? []);
  const kvsOf: KeyValue[][] = ops.map(() => []);
  for (const row of rows) {
    if (row.r_op >= 0 && row.r_key !== null) kvsOf[row.r_op]?.push(txnKv(row));
  }
  const results: TxnOpResult[] = ops.map((op, i) => {
    const kvs = kvsOf[i] ?? [];
    switch (op.type) {
      case 'get':
        return { type: 'get', kv: kvs[0] ?? null };
      case 'range': {
        const more = op.limit !== undefined && kvs.length > op.limit;
        return { type: 'range', kvs: more ? kvs.slice(0, op.limit) : kvs, more };
      }
      case 'put':
        return { type: 'put', prev: kvs[0] ?? null };
      default:
        return { type: 'delete', deleted: kvs.length, prev: kvs };
    }
  });
  return { succeeded, revision, results };
}

/** KV and lease operations of one client. `written` is told after every write that committed. */
export class PgKv {
  readonly #db: Db;
  readonly #written: () => void;
  readonly #granted: (ttl: number) => void;

  constructor(db: Db, hooks: { written: () => void; granted: (ttl: number) => void }) {
    this.#db = db;
    this.#written = hooks.written;
    this.#granted = hooks.granted;
  }

  async now(): Promise<number> {
    const res = await this.#db.run<{ now: string }>(query('now'), [], { write: false });
    return toSafeInteger(res.rows[0]?.now ?? 0, 'time');
  }

  async get(key: string): Promise<GetResult> {
    const res = await this.#db.run<KvRow & { head: string }>(query('kv-get'), [key], { write: false });
    const row = res.rows[0];
    return { kv: row?.key ? kvOf(row) : null, revision: toSafeInteger(row?.head ?? 0) };
  }

  async range(prefix: string, options: RangeOptions = {}): Promise<RangeResult> {
    const limit = options.limit;
    const res = await this.#db.run<KvRow & { head: string }>(
      query('kv-range'),
      [prefix, options.startAfter ?? null, limit === undefined ? null : limit + 1],
      { write: false },
    );
    const kvs = res.rows.filter((r) => r.key !== null).map(kvOf);
    const more = limit !== undefined && kvs.length > limit;
    return {
      kvs: more ? kvs.slice(0, limit) : kvs,
      more,
      revision: toSafeInteger(res.rows[0]?.head ?? 0),
    };
  }

  async txn(request: TxnRequest): Promise<TxnResult> {
    for (const op of [...request.success, ...(request.failure ?? [])]) {
      if (op.type === 'put' && op.lease !== undefined && !LEASE_ID.test(op.lease)) {
        throw new LeaseNotFoundError(`lease ${op.lease} not found`, { detail: { lease: op.lease } });
      }
    }
    const res = await this.#db.run<TxnRow>(query('kv-txn'), encodeTxn(request), { write: true });
    const result = decodeTxn(request, res.rows);
    this.#written();
    return result;
  }

  async put(key: string, value: Uint8Array, lease?: string): Promise<PutResult> {
    const op: TxnOp = lease === undefined ? { type: 'put', key, value } : { type: 'put', key, value, lease };
    const res = await this.txn({ compare: [], success: [op] });
    const first = res.results[0];
    return { revision: res.revision, prev: first?.type === 'put' ? first.prev : null };
  }

  async delete(key: string, prefix: boolean): Promise<DeleteResult> {
    const res = await this.txn({ compare: [], success: [{ type: 'delete', key, prefix }] });
    const first = res.results[0];
    const prev = first?.type === 'delete' ? first.prev : [];
    return { revision: res.revision, deleted: prev.length, prev };
  }

  async grant(ttlMs: number): Promise<Lease> {
    const ttl = Math.ceil(ttlMs / 1000) * 1000;
    const res = await this.#db.run<{ id: string }>(query('lease-grant'), [ttl], { write: true });
    this.#granted(ttl);
    return { id: res.rows[0]?.id as string, ttl };
  }

  async keepAlive(id: string): Promise<Lease> {
    const res = LEASE_ID.test(id)
      ? await this.#db.run<{ ttl: string }>(query('lease-keepalive'), [id], { write: true })
      : { rows: [] };
    const row = res.rows[0];
    if (!row)
      throw new LeaseNotFoundError(`lease ${id} not found (expired or revoked)`, { detail: { lease: id } });
    return { id, ttl: toSafeInteger(row.ttl, 'ttl') };
  }

  async revoke(id: string): Promise<boolean> {
    if (!LEASE_ID.test(id)) return false;
    const res = await this.#db.run<{ existed: boolean }>(query('lease-revoke'), [id, WRITE_SWEEP_LIMIT], {
      write: true,
    });
    this.#written();
    return res.rows[0]?.existed === true;
  }

  async leaseInfo(id: string): Promise<LeaseInfo | null> {
    if (!LEASE_ID.test(id)) return null;
    const res = await this.#db.run<{ ttl: string; remaining: string; keys: string[] }>(
      query('lease-info'),
      [id],
      {
        write: false,
      },
    );
    const row = res.rows[0];
    if (!row) return null;
    return {
      id,
      ttl: toSafeInteger(row.ttl, 'ttl'),
      remaining: Math.max(0, toSafeInteger(row.remaining, 'remaining')),
      keys: row.keys,
    };
  }

  async compact(revision: number): Promise<void> {
    await this.#db.run(query('kv-compact'), [revision], { write: true });
  }

  async status(): Promise<StoreStatus> {
    const res = await this.#db.run<{ revision: string; compact_revision: string }>(query('kv-status'), [], {
      write: false,
    });
    const row = res.rows[0];
    if (!row) throw new StoreCorruptError('the store schema has no revision counter row');
    return {
      revision: toSafeInteger(row.revision),
      compactRevision: toSafeInteger(row.compact_revision),
    };
  }
}
