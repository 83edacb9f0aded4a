/** Decoding of script replies into port records, and encoding of queue arguments. */
import { toSafeInteger } from '../keys.js';
import type { FeedItem, ItemState, KeyValue, Outcome, QueueItem } from '../port.js';

/** A KV record as scripts return it: [key, value, createRevision, modRevision, version, lease | '']. */
export type RawKv = [Buffer, Buffer, number, number, number, Buffer];

function bytes(buf: Buffer): Uint8Array {
  return new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength);
}

export function decodeKv(raw: RawKv | null): KeyValue | null {
  if (!raw) return null;
  const lease = raw[5].toString('utf8');
  return {
    key: raw[0].toString('utf8'),
    value: bytes(raw[1]),
    createRevision: toSafeInteger(raw[2]),
    modRevision: toSafeInteger(raw[3]),
    version: toSafeInteger(raw[4], 'version'),
    lease: lease === '' ? null : lease,
  };
}

/** The head every KV script reply starts with: store now, earliest lease expiry (-1: none), revision. */
export interface KvHead {
  now: number;
  earliestLease: number | null;
  revision: number;
}

export function decodeHead(reply: unknown[]): KvHead {
  const earliest = Number(reply[1]);
  return {
    now: Number(reply[0]),
    earliestLease: earliest < 0 ? null : earliest,
    revision: toSafeInteger(reply[2] as number),
  };
}

const intOrNull = (v: string | undefined): number | null => (v === undefined ? null : Number(v));

/**
 * An item from a flat reply `[id, field, value, field, value, ...]` (see lib-queue.lua for the
 * field names). Absent fields are null, or 0 for the counters.
 */
export function decodeItem(flat: string[]): FeedItem {
  const f: Record<string, string> = {};
  for (let i = 1; i < flat.length; i += 2) f[flat[i] as string] = flat[i + 1] as string;
  const ec = f.ec;
  return {
    id: flat[0] as string,
    queue: f.q as string,
    state: f.s as ItemState,
    outcome: (f.o ?? null) as Outcome | null,
    payload: f.p ?? '',
    priority: Number(f.pr ?? 0),
    runAt: Number(f.ra),
    seq: toSafeInteger(f.sq ?? 0, 'seq'),
    attempt: Number(f.a ?? 0),
    maxAttempts: Number(f.ma),
    owner: f.ow ?? null,
    token: f.tk === undefined ? null : toSafeInteger(f.tk, 'token'),
    leaseExpiresAt: intOrNull(f.le),
    claimedAt: intOrNull(f.ca),
    startedAt: intOrNull(f.sa),
    completedAt: intOrNull(f.co),
    createdAt: Number(f.cr),
    updatedAt: Number(f.up),
    progress: f.pg ?? null,
    result: f.rs ?? null,
    error: ec === undefined ? null : { code: ec, message: f.em ?? '' },
    rejections: Number(f.rj ?? 0),
    lastRejection: f.lr ?? null,
    stalls: Number(f.st ?? 0),
    timeout: intOrNull(f.to),
    claimTimeout: intOrNull(f.ct),
    deadLetter: f.dl ?? null,
    completedTtl: Number(f.ctl),
    failedTtl: Number(f.ftl),
    dedupKey: f.dk ?? null,
    dedupUntil: intOrNull(f.du),
    expireAt: intOrNull(f.ex),
    meta: f.mt ?? null,
    opId: f.op ?? null,
    changeSeq: toSafeInteger(f.cs ?? 0, 'changeSeq'),
  };
}

export function decodeLiveItem(flat: string[]): QueueItem | null {
  const item = decodeItem(flat);
  return item.state === 'deleted' ? null : (item as QueueItem);
}

/** Optional text argument: '' for null/undefined, else '=' + text (so '' itself survives). */
export function optText(value: string | null | undefined): string {
  return value === null || value === undefined ? '' : `=${value}`;
}

/** Optional number argument: '' for null/undefined. */
export function optNum(value: number | null | undefined): string | number {
  return value === null || value === undefined ? '' : value;
}
