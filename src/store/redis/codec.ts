/** Decoding of script replies into port records, and encoding of queue arguments. */
import { toSafeInteger } from '../keys.js';
import { type FeedItem, ITEM_DEFAULTS, type KeyValue, type Outcome, type QueueItem } from '../port.js';

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

type Mutable<T> = { -readonly [K in keyof T]: T[K] };

/**
 * An item as scripts return it: [id, [field, value, ...], [changed field, value | null, ...]].
 * Inside a JSON reply (claim) a null value arrives as `false`, and an empty list as `{}` (cjson
 * cannot tell an empty array from an empty object).
 */
export type RawItem = [string, string[], (string | null | false)[]];

function assign(it: Mutable<FeedItem>, pairs: (string | null | false)[]): void {
  for (let i = 0; i < pairs.length; i += 2) {
    const raw = pairs[i + 1];
    const v = typeof raw === 'string' ? raw : null;
    switch (pairs[i]) {
      case 'q':
        it.queue = v as string;
        break;
      case 's':
        it.state = v as FeedItem['state'];
        break;
      case 'o':
        it.outcome = v as Outcome | null;
        break;
      case 'p':
        it.payload = v ?? '';
        break;
      case 'pr':
        it.priority = Number(v ?? 0);
        break;
      case 'ra':
        it.runAt = Number(v);
        break;
      case 'sq':
        it.seq = toSafeInteger(v ?? 0, 'seq');
        break;
      case 'a':
        it.attempt = Number(v ?? 0);
        break;
      case 'ma':
        it.maxAttempts = Number(v);
        break;
      case 'ow':
        it.owner = v;
        break;
      case 'tk':
        it.token = v === null ? null : toSafeInteger(v, 'token');
        break;
      case 'le':
        it.leaseExpiresAt = num(v);
        break;
      case 'ca':
        it.claimedAt = num(v);
        break;
      case 'sa':
        it.startedAt = num(v);
        break;
      case 'co':
        it.completedAt = num(v);
        break;
      case 'cr':
        it.createdAt = Number(v);
        break;
      case 'up':
        it.updatedAt = Number(v);
        break;
      case 'pg':
        it.progress = v;
        break;
      case 'rs':
        it.result = v;
        break;
      case 'ec':
        it.error = v === null ? null : { code: v, message: it.error?.message ?? '' };
        break;
      case 'em':
        if (it.error) it.error = { code: it.error.code, message: v ?? '' };
        else if (v !== null) it.error = { code: '', message: v };
        break;
      case 'rj':
        it.rejections = Number(v ?? 0);
        break;
      case 'lr':
        it.lastRejection = v;
        break;
      case 'st':
        it.stalls = Number(v ?? 0);
        break;
      case 'to':
        it.timeout = num(v);
        break;
      case 'ct':
        it.claimTimeout = num(v);
        break;
      case 'dl':
        it.deadLetter = v;
        break;
      case 'ctl':
        it.completedTtl = Number(v);
        break;
      case 'ftl':
        it.failedTtl = Number(v);
        break;
      case 'dk':
        it.dedupKey = v;
        break;
      case 'du':
        it.dedupUntil = num(v);
        break;
      case 'ex':
        it.expireAt = num(v);
        break;
      case 'mt':
        it.meta = v;
        break;
      case 'op':
        it.opId = v;
        break;
      case 'cs':
        it.changeSeq = toSafeInteger(v ?? 0, 'changeSeq');
        break;
    }
  }
}

const num = (v: string | null): number | null => (v === null ? null : Number(v));

/** Decode an item (see lib-queue.lua for the field names). Absent fields are null, or 0 for counters. */
export function decodeItem(raw: RawItem): FeedItem {
  const it: Mutable<FeedItem> = {
    id: raw[0],
    queue: '',
    state: 'pending',
    outcome: null,
    payload: '',
    priority: 0,
    runAt: 0,
    seq: 0,
    attempt: 0,
    // Not stored when they have their default (lib-queue.lua); an older item may store them.
    maxAttempts: ITEM_DEFAULTS.maxAttempts,
    owner: null,
    token: null,
    leaseExpiresAt: null,
    claimedAt: null,
    startedAt: null,
    completedAt: null,
    createdAt: 0,
    updatedAt: 0,
    progress: null,
    result: null,
    error: null,
    rejections: 0,
    lastRejection: null,
    stalls: 0,
    timeout: null,
    claimTimeout: null,
    deadLetter: null,
    completedTtl: ITEM_DEFAULTS.completedTtl,
    failedTtl: ITEM_DEFAULTS.failedTtl,
    dedupKey: null,
    dedupUntil: null,
    expireAt: null,
    meta: null,
    opId: null,
    changeSeq: 0,
  };
  assign(it, raw[1]);
  if (raw[2]) assign(it, raw[2]);
  return it;
}

/**
 * The changes a claim made to every item it took by the hot path (`common` in
 * Q.new_claim_reply, lib-queue.lua): state, owner, leaseExpiresAt and the claim's store time.
 */
type ClaimCommon = [state: 'claimed' | 'running', owner: string, leaseExpiresAt: string, now: string];

/** A claimed item in a claim reply: a {@link RawItem}, or [id, fields before, changeSeq] with `common`. */
type ClaimedRawItem = RawItem | [string, string[], string];

/** Decode the reply of q-claim, or a hand-off message: [nextRunAt | false, common | false, item...]. */
export function decodeClaimed(reply: unknown[]): QueueItem[] {
  const common = reply[1] as ClaimCommon | false;
  const items: QueueItem[] = [];
  for (let i = 2; i < reply.length; i++) {
    const raw = reply[i] as ClaimedRawItem;
    const cs = raw[2];
    if (typeof cs !== 'string' || !common) {
      items.push(decodeItem(raw as RawItem) as QueueItem);
      continue;
    }
    const it = decodeItem([raw[0], raw[1], []]) as Mutable<QueueItem>;
    const now = Number(common[3]);
    it.state = common[0];
    it.owner = common[1];
    it.token = toSafeInteger(cs, 'token');
    it.changeSeq = it.token;
    it.leaseExpiresAt = Number(common[2]);
    it.claimedAt = now;
    it.updatedAt = now;
    if (common[0] === 'running') {
      it.attempt += 1;
      it.startedAt = now;
    }
    items.push(it);
  }
  return items;
}

export function decodeLiveItem(raw: RawItem): QueueItem | null {
  const item = decodeItem(raw);
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
