/**
 * The KV half on SQLite: keys, revisions, transactions, leases and the change log. Every function
 * here runs inside a transaction opened by the caller (see `Connection.write` / `read`).
 */
import { InvalidArgumentError, LeaseNotFoundError } from '../../errors.js';
import type {
  Compare,
  DeleteResult,
  KeyValue,
  Lease,
  LeaseInfo,
  PutResult,
  RangeOptions,
  RangeResult,
  TxnOp,
  TxnOpResult,
  TxnRequest,
  TxnResult,
  WatchEvent,
} from '../port.js';
import type { Connection, Counters } from './connection.js';
import {
  COMPACT_HISTORY,
  DELETE_KEY,
  EVENTS_AFTER,
  GET_KEY,
  INSERT_EVENT,
  RANGE_BOUNDED,
  RANGE_UNBOUNDED,
  UPSERT_KEY,
} from './sql/kv.js';
import {
  ANY_DUE_LEASE,
  DELETE_LEASE,
  DUE_LEASES,
  GET_LEASE,
  INSERT_LEASE,
  LEASE_KEYS,
  TOUCH_LEASE,
} from './sql/leases.js';

const EMPTY = new Uint8Array(0);
/** Leases expired per write transaction at most; the rest go in the next one. */
const EXPIRE_BATCH = 1000;
/**
 * Auto-compaction runs once the history exceeds its limit by this many revisions (or by the limit
 * itself when that is smaller), so it deletes a batch at a time, not one revision per write.
 */
const COMPACT_SLACK = 1024;

interface KvRow {
  key: Buffer;
  value: Buffer | null;
  create_revision: number;
  mod_revision: number;
  version: number;
  lease: string | null;
}

export interface EventRow {
  revision: number;
  idx: number;
  type: number;
  key: Buffer;
  value: Buffer | null;
  create_revision: number;
  version: number;
  lease: string | null;
}

const keyBytes = (key: string): Buffer => Buffer.from(key, 'utf8');
const asBuffer = (value: Uint8Array): Buffer => Buffer.from(value.buffer, value.byteOffset, value.byteLength);
const asBytes = (buf: Buffer | null): Uint8Array =>
  buf ? new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength) : EMPTY;

/** The exclusive upper bound of every key starting with `prefix` (bytes), or null for no bound. */
function prefixEnd(prefix: Buffer): Buffer | null {
  // UTF-8 never contains 0xff, so incrementing the last byte always works; the loop is for safety.
  const end = Buffer.from(prefix);
  for (let i = end.length - 1; i >= 0; i--) {
    if ((end[i] as number) < 0xff) {
      end[i] = (end[i] as number) + 1;
      return end.subarray(0, i + 1);
    }
  }
  return null;
}

function toKeyValue(row: KvRow): KeyValue {
  return {
    key: row.key.toString('utf8'),
    value: asBytes(row.value),
    createRevision: row.create_revision,
    modRevision: row.mod_revision,
    version: row.version,
    lease: row.lease,
  };
}

/** A change-log row as a watch event. */
export function toWatchEvent(row: EventRow): WatchEvent {
  const key = row.key.toString('utf8');
  if (row.type === 1) {
    return {
      type: 'delete',
      kv: { key, value: EMPTY, createRevision: 0, modRevision: row.revision, version: 0, lease: null },
      revision: row.revision,
    };
  }
  return {
    type: 'put',
    kv: {
      key,
      value: asBytes(row.value),
      createRevision: row.create_revision,
      modRevision: row.revision,
      version: row.version,
      lease: row.lease,
    },
    revision: row.revision,
  };
}

function compareNumber(op: Compare['op'], actual: number, expected: number): boolean {
  switch (op) {
    case '==':
      return actual === expected;
    case '!=':
      return actual !== expected;
    case '<':
      return actual < expected;
    case '>':
      return actual > expected;
  }
}

// ------------------------------------------------------------------------------------------------
// Reads (no transaction needed for one statement; callers wrap several in `read`)

export function getKey(conn: Connection, key: string): KeyValue | null {
  const row = conn.stmt<KvRow>(GET_KEY).get(keyBytes(key));
  return row ? toKeyValue(row) : null;
}

export function rangeKeys(
  conn: Connection,
  prefix: string,
  limit?: number,
  startAfter?: string,
): { kvs: KeyValue[]; more: boolean } {
  const start = keyBytes(prefix);
  const end = prefix === '' ? null : prefixEnd(start);
  const after = startAfter !== undefined ? keyBytes(startAfter) : Buffer.alloc(0);
  // `key > after` with an empty blob is always true except for the empty key, which never exists.
  const params = { start, after, end, limit: limit === undefined ? -1 : limit + 1 };
  const rows = conn.stmt<KvRow>(end ? RANGE_BOUNDED : RANGE_UNBOUNDED).all(params);
  const more = limit !== undefined && rows.length > limit;
  return { kvs: (more ? rows.slice(0, limit) : rows).map(toKeyValue), more };
}

export function readRange(conn: Connection, prefix: string, options: RangeOptions = {}): RangeResult {
  return conn.read(() => {
    const { kvs, more } = rangeKeys(conn, prefix, options.limit, options.startAfter);
    return { kvs, more, revision: conn.counters().revision };
  });
}

/** Whether some lease has expired by `now` (one index probe; reads then expire them first). */
export function anyLeaseDue(conn: Connection, now: number): boolean {
  return conn.stmt(ANY_DUE_LEASE).get(now) !== undefined;
}

export function leaseInfo(conn: Connection, id: string, now: number): LeaseInfo | null {
  return conn.read(() => {
    const lease = conn.stmt<{ id: string; ttl: number; expires_at: number }>(GET_LEASE).get(id);
    if (!lease || lease.expires_at <= now) return null;
    const keys = conn
      .stmt<KvRow>(LEASE_KEYS)
      .all(id)
      .map((r) => r.key.toString('utf8'));
    return { id, ttl: lease.ttl, remaining: Math.max(0, lease.expires_at - now), keys };
  });
}

/** Change-log rows after (revision, idx) up to revision `to`, at most `limit`. */
export function readEvents(
  conn: Connection,
  after: { revision: number; idx: number },
  to: number,
  limit: number,
): EventRow[] {
  return conn.stmt<EventRow>(EVENTS_AFTER).all({ revision: after.revision, idx: after.idx, to, limit });
}

// ------------------------------------------------------------------------------------------------
// Writes

/**
 * One revision being written: every put and delete through it shares `revision`, and the counter
 * moves only if something was written (`finish`).
 */
export class RevisionWriter {
  readonly #conn: Connection;
  readonly #counters: Counters;
  readonly revision: number;
  #idx = 0;

  constructor(conn: Connection, counters: Counters) {
    this.#conn = conn;
    this.#counters = counters;
    this.revision = counters.revision + 1;
  }

  get wrote(): boolean {
    return this.#idx > 0;
  }

  #event(type: 0 | 1, key: Buffer, kv: Omit<KvRow, 'key' | 'mod_revision'> | null): void {
    this.#conn.stmt(INSERT_EVENT).run({
      revision: this.revision,
      idx: this.#idx++,
      type,
      key,
      value: kv?.value ?? null,
      createRevision: kv?.create_revision ?? 0,
      version: kv?.version ?? 0,
      lease: kv?.lease ?? null,
    });
  }

  put(key: string, value: Uint8Array, lease: string | undefined): KeyValue | null {
    if (lease !== undefined && !this.#conn.stmt(GET_LEASE).get(lease))
      throw new LeaseNotFoundError(`lease ${lease} not found`, { detail: { lease } });
    const k = keyBytes(key);
    const prevRow = this.#conn.stmt<KvRow>(GET_KEY).get(k);
    const row = {
      value: asBuffer(value),
      create_revision: prevRow ? prevRow.create_revision : this.revision,
      version: prevRow ? prevRow.version + 1 : 1,
      lease: lease ?? null,
    };
    this.#conn.stmt(UPSERT_KEY).run({
      key: k,
      value: row.value,
      createRevision: row.create_revision,
      modRevision: this.revision,
      version: row.version,
      lease: row.lease,
    });
    this.#event(0, k, row);
    return prevRow ? toKeyValue(prevRow) : null;
  }

  delete(key: string, prefix: boolean): KeyValue[] {
    const victims = prefix
      ? rangeKeys(this.#conn, key).kvs
      : [getKey(this.#conn, key)].filter((x) => x !== null);
    const del = this.#conn.stmt(DELETE_KEY);
    for (const kv of victims) {
      const k = keyBytes(kv.key);
      del.run(k);
      this.#event(1, k, null);
    }
    return victims;
  }

  /** Commit the revision to the counters if anything was written; compact history past its bound. */
  finish(historyLimit: number): void {
    if (!this.wrote) return;
    this.#counters.revision = this.revision;
    if (this.revision - this.#counters.compactRevision > historyLimit + Math.min(COMPACT_SLACK, historyLimit))
      compactHistory(this.#conn, this.#counters, this.revision - historyLimit);
  }
}

function compactHistory(conn: Connection, counters: Counters, revision: number): void {
  if (revision <= counters.compactRevision) return;
  conn.stmt(COMPACT_HISTORY).run(revision);
  counters.compactRevision = revision;
}

/** Delete leases whose expiry passed, each lease's keys in one revision. Returns how many leases went. */
export function expireLeases(
  conn: Connection,
  counters: Counters,
  now: number,
  historyLimit: number,
): number {
  const due = conn.stmt<{ id: string }>(DUE_LEASES).all(now, EXPIRE_BATCH);
  for (const { id } of due) dropLease(conn, counters, id, historyLimit);
  return due.length;
}

function dropLease(conn: Connection, counters: Counters, id: string, historyLimit: number): void {
  const keys = conn.stmt<KvRow>(LEASE_KEYS).all(id);
  // Every key of one lease goes in one revision, like etcd.
  const writer = new RevisionWriter(conn, counters);
  for (const row of keys) writer.delete(row.key.toString('utf8'), false);
  conn.stmt(DELETE_LEASE).run(id);
  writer.finish(historyLimit);
}

export function putKey(
  conn: Connection,
  counters: Counters,
  key: string,
  value: Uint8Array,
  lease: string | undefined,
  historyLimit: number,
): PutResult {
  const writer = new RevisionWriter(conn, counters);
  const prev = writer.put(key, value, lease);
  writer.finish(historyLimit);
  return { revision: counters.revision, prev };
}

export function deleteKeys(
  conn: Connection,
  counters: Counters,
  key: string,
  prefix: boolean,
  historyLimit: number,
): DeleteResult {
  const writer = new RevisionWriter(conn, counters);
  const prev = writer.delete(key, prefix);
  writer.finish(historyLimit);
  return { revision: counters.revision, deleted: prev.length, prev };
}

function check(conn: Connection, c: Compare): boolean {
  const kv = getKey(conn, c.key);
  if (c.target === 'value') {
    if (!kv) return c.op === '!=';
    const eq = Buffer.compare(asBuffer(kv.value), asBuffer(c.value)) === 0;
    return c.op === '==' ? eq : !eq;
  }
  return compareNumber(c.op, kv ? kv[c.target] : 0, c.value);
}

function applyOp(conn: Connection, writer: RevisionWriter, op: TxnOp): TxnOpResult {
  switch (op.type) {
    case 'get':
      return { type: 'get', kv: getKey(conn, op.key) };
    case 'range': {
      const { kvs, more } = rangeKeys(conn, op.prefix, op.limit);
      return { type: 'range', kvs, more };
    }
    case 'put':
      return { type: 'put', prev: writer.put(op.key, op.value, op.lease) };
    case 'delete': {
      const prev = writer.delete(op.key, op.prefix ?? false);
      return { type: 'delete', deleted: prev.length, prev };
    }
  }
}

export function runTxn(
  conn: Connection,
  counters: Counters,
  request: TxnRequest,
  historyLimit: number,
): TxnResult {
  const succeeded = request.compare.every((c) => check(conn, c));
  const ops: TxnOp[] = succeeded ? request.success : (request.failure ?? []);
  const writer = new RevisionWriter(conn, counters);
  const results = ops.map((op) => applyOp(conn, writer, op));
  writer.finish(historyLimit);
  return { succeeded, revision: counters.revision, results };
}

// ------------------------------------------------------------------------------------------------
// Leases

export function grantLease(conn: Connection, counters: Counters, ttlMs: number, now: number): Lease {
  const ttl = Math.ceil(ttlMs / 1000) * 1000;
  counters.leaseCounter += 1;
  const id = counters.leaseCounter.toString(16).padStart(16, '0');
  conn.stmt(INSERT_LEASE).run(id, ttl, now + ttl);
  return { id, ttl };
}

/** Renew a lease; null when it does not exist (after expiry was applied). */
export function touchLease(conn: Connection, id: string, now: number): Lease | null {
  const row = conn.stmt<{ ttl: number }>(TOUCH_LEASE).get(now, id);
  return row ? { id, ttl: row.ttl } : null;
}

export function revokeLease(conn: Connection, counters: Counters, id: string, historyLimit: number): boolean {
  if (!conn.stmt(GET_LEASE).get(id)) return false;
  dropLease(conn, counters, id, historyLimit);
  return true;
}

/** `compact(revision)`: discard history up to and including `revision`. */
export function compact(conn: Connection, counters: Counters, revision: number): void {
  if (revision > counters.revision) {
    throw new InvalidArgumentError(
      `cannot compact revision ${revision}: the store is at ${counters.revision}`,
      { detail: { field: 'revision' } },
    );
  }
  compactHistory(conn, counters, revision);
}
